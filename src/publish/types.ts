import type { Manifest } from "../bake/manifest";
import type { Progress } from "../util/progress";

export interface PublishRequest {
  /** The path of the raw disk. */
  disk: string;
  manifest: Manifest;
  progress: Progress;
  signal?: AbortSignal;
}

/** One published image: Packer's manifest post-processor shape (builds[]), plus ours. */
export interface PublishedImage {
  builder_type: string;
  artifact_id: string;
  build_time: number;
  custom_data: { imageId: string; diskSha256: string; [k: string]: string };
}
