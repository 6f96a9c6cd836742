"""A step's data in shared memory: staging, commit, vetting, the sandbox rules, the seal, the shm budget,
delivery of results, copies out of shm and freeing."""
