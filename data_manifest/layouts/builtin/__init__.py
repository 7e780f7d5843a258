"""The built-in skeleton layouts, one YAML file each (package data)."""
