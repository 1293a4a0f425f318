"""The job domain: what a user asked for, its life cycle and its lineage. Knows nothing of Bolt."""
