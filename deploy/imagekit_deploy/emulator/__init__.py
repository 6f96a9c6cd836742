"""Local pods (`imagekit pod …`): the rendered StatefulSet's pods run on the Docker engine, for debugging a shard
and injecting the four failure levels without a cluster (docs/deploy.md, "What `imagekit pod` is for"). Nothing
here is a second configuration: every pod is made from the rendered manifests."""
