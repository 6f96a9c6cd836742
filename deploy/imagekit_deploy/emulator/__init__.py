"""Local pods: the rendered StatefulSet's pods emulated on the Docker engine (`imagekit pod …`).

    blueprint.py  the rendered pod template read as a kubelet would: downward API, $(VAR), volumes
    state.py      the state directory that lets separate CLI calls find the same pods
    engine.py     the Docker SDK (the only module of the deploy path that imports it)
    volumes.py    where each volume lives on this machine, and for how long
    pods.py       a pod = sandbox (IPC namespace, /dev/shm) + init containers + pipeline container
    rollout.py    the controller's decisions: template revisions, update strategy, in place or recreate
    apply.py      `pod up` / `pod apply`: create missing pods, roll those of another template
    faults.py     the four failure levels (docs/contract.md): process, container, pod, node
    status.py     phases, restarts, image and revision, update state, and the runtime's journal read from
                  the pod's shm
    observe.py    `pod logs` (the container's output, a step's log kept on the SSD) and the published metrics port

Nothing here is a second configuration: every pod is made from the rendered manifests.
"""
