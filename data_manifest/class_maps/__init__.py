"""The built-in class maps between datasets, one YAML file each (package data)."""
