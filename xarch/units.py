"""Sizes as people read them, the same in every table and progress line."""


def human_size(size: int) -> str:
    """Decimal units (kB = 1000 B), as registries and `docker images` print them."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"
