"""Erasure of one data subject from the data bucket, every object version included: run by
`mlops erase`, as the stack's erasure role."""
