"""Bindle lifecycle: retention policies and the online garbage collector."""
