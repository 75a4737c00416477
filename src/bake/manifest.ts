import type { DiskInfo } from "../image/disk";
import type { Arch } from "../spec/schema";
import type { PublishedImage } from "../publish/types";
import type { ManifestFile } from "./tree";

export const TARGETS = ["dir", "raw", "qcow2"] as const;
export type Target = (typeof TARGETS)[number];
/** Targets that bake the raw disk and publish it to a cloud (the manifest's own target stays raw). */
export const PUBLISH_TARGETS = ["aws", "gce", "azure"] as const;
export type PublishTarget = (typeof PUBLISH_TARGETS)[number];

export const MANIFEST_KIND = "kubebake.io/image-manifest";

export interface ManifestComponent {
  name: string;
  version: string;
  arch: Arch;
  roles: string[];
  /** The upstream URL, or debian:<package>=<version>:<arch>. */
  url: string;
  sha256: string;
}

/** A container image preloaded into the image (containerd imports it before the kubelet starts). */
export interface ManifestImage {
  /** Where the spec names it: addons.pause, addons.extra[0]… */
  name: string;
  reference: string;
  /** The pinned digest (an index or a manifest). */
  digest: string;
  /** The manifest of the image's platform. */
  manifest: string;
  /** Bytes of its blobs (shared layers counted in each image). */
  size: number;
}

export interface Manifest {
  kind: typeof MANIFEST_KIND;
  manifestVersion: 1;
  imageId: string;
  name: string;
  arch: Arch;
  target: Target;
  /** The image tree, relative to the manifest. */
  rootfs: "rootfs";
  /** The inputs' digest: when a rebake's inputs match and the tree is intact, the bake is reused. */
  inputs: string;
  spec: { path: string; sha256: string };
  components: ManifestComponent[];
  /** Absent in manifests of bakes before preloading. */
  images?: ManifestImage[];
  files: ManifestFile[];
  /** The bootable disk, for the raw and qcow2 targets. */
  disk?: DiskInfo;
  /** Where the disk was published (Packer's manifest post-processor shape), added by --target aws|gce|azure. */
  builds?: PublishedImage[];
  /** The disk's block digests (a file beside the manifest), for the next publish to upload only changes. */
  blockDigests?: string;
}
