"""The engine service: scheduler, strategy lifecycle, monitors and the control API."""
