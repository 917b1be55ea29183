"""Protocol-neutral model of accounts, users, buckets and objects, shared by the S3 and Swift APIs."""
