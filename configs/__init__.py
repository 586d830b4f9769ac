"""The preset configurations (this folder ships inside the package as mlpcli.presets)."""
