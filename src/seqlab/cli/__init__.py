"""The ``seqlab`` command line: parse, then call the Python API."""
