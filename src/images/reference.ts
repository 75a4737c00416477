/**
 * Container image references pinned by digest: `registry.k8s.io/pause:3.10.2@sha256:<64 hex>`.
 * A tag alone can be moved under a release; a digest cannot, so the image spec accepts only digests
 * (the tag stays as a label for people and for the name containerd lists).
 */
export interface PinnedImage {
  /** As written in the spec. */
  reference: string;
  /** The host in the reference, as containerd names images: docker.io stays docker.io. */
  registry: string;
  repository: string;
  tag?: string;
  /** sha256:<64 hex>: of the image index (manifest list) or of a single-platform manifest. */
  digest: string;
}

const REFERENCE =
  /^([a-z0-9.-]+(?::[0-9]+)?)\/([a-z0-9]+(?:[._/-][a-z0-9]+)*)(?::([A-Za-z0-9_][A-Za-z0-9._-]{0,127}))?@(sha256:[0-9a-f]{64})$/;

/** undefined when the reference is not host/repository[:tag]@sha256:<64 hex>. */
export function parsePinnedImage(reference: string): PinnedImage | undefined {
  const m = REFERENCE.exec(reference);
  if (!m) return undefined;
  const [, host, path, tag, digest] = m as unknown as [string, string, string, string | undefined, string];
  // Docker Hub's official images live under library/, and containerd names them so.
  const repository = host === "docker.io" && !path.includes("/") ? `library/${path}` : path;
  return { reference, registry: host, repository, ...(tag ? { tag } : {}), digest };
}

/**
 * The names containerd's CRI plugin looks images up by: the kubelet asks for `repo:tag@digest` and CRI
 * normalises it to `repo@digest` (a digest wins over a tag); `repo:tag` is what people list.
 */
export function containerdNames(image: PinnedImage): string[] {
  const repo = `${image.registry}/${image.repository}`;
  return [`${repo}@${image.digest}`, ...(image.tag ? [`${repo}:${image.tag}`] : [])];
}

/** Where the distribution API of a registry host is: Docker Hub's API has its own host. */
export function registryEndpoint(host: string): string {
  if (host === "docker.io") return "https://registry-1.docker.io";
  // Like docker and containerd: a registry on this machine speaks plain HTTP.
  const local = /^(localhost|127\.\d+\.\d+\.\d+)(:\d+)?$/.test(host);
  return `${local ? "http" : "https"}://${host}`;
}
