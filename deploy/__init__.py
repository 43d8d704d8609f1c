"""Running the system: the `jiaozhi` launcher for one machine; Kubernetes manifests in k8s/."""
