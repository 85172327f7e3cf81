"""Lightning callbacks, one per file; ``conf/callbacks/`` composes them."""
