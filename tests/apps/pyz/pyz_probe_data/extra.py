"""A submodule, for pkgutil.iter_modules."""
