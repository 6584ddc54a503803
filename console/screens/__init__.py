"""One module per console screen; `base.PolledScreen` holds the shared polling and header plumbing."""
