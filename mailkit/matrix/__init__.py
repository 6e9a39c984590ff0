"""``mailkit matrix``: the guide on several Debian releases at once, and one report."""
