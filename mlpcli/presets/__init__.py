"""The preset configurations, shipped inside the package (the repository's configs/ links here)."""
