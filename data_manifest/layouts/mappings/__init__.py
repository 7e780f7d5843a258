"""The built-in joint mappings between layouts, one YAML file each (package data)."""
