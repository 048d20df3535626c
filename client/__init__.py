"""HTTP client library, the huzhu command line, audit and load generator."""
