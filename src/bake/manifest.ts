import type { DiskInfo } from "../image/disk";
import type { Arch } from "../spec/schema";
import type { ManifestFile } from "./tree";

export const TARGETS = ["dir", "raw", "qcow2"] as const;
export type Target = (typeof TARGETS)[number];

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
  files: ManifestFile[];
  /** The bootable disk, for the raw and qcow2 targets. */
  disk?: DiskInfo;
}
