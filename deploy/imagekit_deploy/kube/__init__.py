"""imagekit's deploy verbs against a real cluster (`imagekit deploy apply|status|wait|logs|results|delete`).

The client is the Kubernetes project's own Python client (`kubernetes`): it reads kubeconfig files and
contexts exactly as kubectl does (KUBECONFIG, --kubeconfig, --context), follows each Kubernetes release,
and its dynamic client reaches OpenKruise's custom resources without generated types, with server-side
apply. Every call to the cluster goes through `client.Cluster`.
"""
