"""Every AWS call the functions make: the only modules under functions/ that import boto3 or botocore. Adapters expose no raw client."""
