/** The compute descriptions and handlers for managed images, as the Azure publish and launch code use them. */
import { ArmFake } from "./arm-fake";
import { registerResource, ResourceStore, type CreateCheck } from "./resources";

export const COMPUTE_SPECS = [
  "compute/resource-manager/Microsoft.Compute/ComputeRP/stable/2024-07-01/image.json",
];

export interface ComputeFake {
  fake: ArmFake;
  store: ResourceStore;
  /** Set by a test to refuse or fail image creations. */
  images: { checkCreate?: CreateCheck };
}

export async function startComputeFake(): Promise<ComputeFake> {
  const fake = await ArmFake.start(COMPUTE_SPECS);
  const store = new ResourceStore();
  const images: ComputeFake["images"] = {};
  registerResource(fake, store, {
    createOrUpdate: "Images_CreateOrUpdate",
    get: "Images_Get",
    update: "Images_Update",
    delete: "Images_Delete",
    list: ["Images_List", "Images_ListByResourceGroup"],
    checkCreate: (request, s) => images.checkCreate?.(request, s),
  });
  return { fake, store, images };
}
