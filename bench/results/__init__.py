"""Results: run records and their store, TREC export, comparison tables, figures and the regression gate."""
