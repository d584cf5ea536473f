"""Pure ML and data code: no boto3, no AWS. Every function here runs on a laptop as is."""
