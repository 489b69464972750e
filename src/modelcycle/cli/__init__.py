"""The modelcycle command line."""
