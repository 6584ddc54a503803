"""Console widgets: keyed live tables, the status header and engine banner, charts and confirmation modals."""
