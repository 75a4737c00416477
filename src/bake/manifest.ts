import type { Arch } from "../spec/schema";
import type { ManifestFile } from "./tree";

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
  targets: { dir: { path: "rootfs" } };
  /** The inputs' digest: when a rebake's inputs match and the tree is intact, the bake is reused. */
  inputs: string;
  spec: { path: string; sha256: string };
  components: ManifestComponent[];
  files: ManifestFile[];
}
