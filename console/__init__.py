"""quantdesk front ends: the Textual console and the CLI."""
