import { ComputeState, installCompute } from "./compute";
import { parseReference } from "./compute-common";
import { ComputeResourcesState, installComputeResources } from "./compute-resources";
import { DnsState, installDns } from "./dns";
import { EventarcState, installEventarc } from "./eventarc";
import { GoogleApiFake } from "./fake";
import { FunctionsState, installFunctions } from "./functions";
import { IamState, installIam } from "./iam";
import { installProjectIam, ProjectIamState } from "./project-iam";
import { installScheduler, SchedulerState } from "./scheduler";
import { installSecrets, SecretsState } from "./secrets";
import { installStorage, StorageState } from "./storage";

/**
 * One fake Google Cloud for a test: a single GoogleApiFake serving Compute, Cloud DNS, IAM, Resource
 * Manager, Secret Manager and Cloud Storage, with the models wired to each other as GCP's services are:
 * policies (project and secrets) refuse accounts IAM does not have and custom roles it does not know, and
 * see a deleted account's memberships turn into `deleted:` members; private DNS zones need Compute
 * networks that exist, and a network a zone uses cannot be deleted; instance templates' service accounts
 * of the project must exist in IAM; images are made from objects in the storage model. Cloud Functions,
 * Cloud Scheduler and Eventarc check the project's service accounts against IAM too, and Eventarc's
 * Cloud Run destinations must be services of deployed functions (set `eventarc.options.runServiceExists`
 * to allow others).
 */
export interface GoogleCloudOptions {
  /** The project the models know (its policy exists, its accounts are checked). Default "p1". */
  project?: string;
  /** Its number, which Secret Manager answers in names. Default "100000000001". */
  projectNumber?: string;
  /** Cloud DNS refuses zones managedZones.create did not make (default true; false: made on demand). */
  strictZones?: boolean;
  /** Whether a network URL exists, for private DNS zones; default: a network of the Compute model. */
  networkExists?: (networkUrl: string) => boolean;
}

export interface GoogleCloud {
  fake: GoogleApiFake;
  url: string;
  port: number;
  project: string;
  projectNumber: string;
  iam: IamState;
  projectIam: ProjectIamState;
  secrets: SecretsState;
  dns: DnsState;
  storage: StorageState;
  /** Compute images and global operations (compute.ts). */
  compute: ComputeState;
  /** Compute networks, subnetworks, firewalls, templates, groups (compute-resources.ts). */
  resources: ComputeResourcesState;
  /** Cloud Functions v2 (functions.ts). */
  functions: FunctionsState;
  /** Cloud Scheduler v1 (scheduler.ts). */
  scheduler: SchedulerState;
  /** Eventarc v1 (eventarc.ts). */
  eventarc: EventarcState;
  stop(): Promise<void>;
}

export async function startGoogleCloud(options: GoogleCloudOptions = {}): Promise<GoogleCloud> {
  const project = options.project ?? "p1";
  const projectNumber = options.projectNumber ?? "100000000001";
  const fake = new GoogleApiFake([
    "compute.v1",
    "dns.v1",
    "iam.v1",
    "cloudresourcemanager.v3",
    "secretmanager.v1",
    "storage.v1",
    "cloudfunctions.v2",
    "cloudscheduler.v1",
    "eventarc.v1",
  ]);
  const iam = installIam(fake);
  const projectIam = installProjectIam(fake, new ProjectIamState(iam, [project]));
  const secrets = installSecrets(fake, new SecretsState(iam, { [project]: projectNumber }));
  const storage = installStorage(fake);
  const compute = installCompute(fake, new ComputeState(storage));
  // Accounts of other projects and Google's (the compute default account…) are not IAM's to know.
  const serviceAccountExists = (email: string) =>
    !email.endsWith(`@${project}.iam.gserviceaccount.com`) || iam.exists(email);
  const resources = installComputeResources(
    fake,
    new ComputeResourcesState({ compute, serviceAccountExists }),
  );
  const functions = installFunctions(
    fake,
    new FunctionsState({ iam, serviceAccountExists, projectNumbers: { [project]: projectNumber }, storage }),
  );
  const scheduler = installScheduler(fake, new SchedulerState({ serviceAccountExists }));
  // A function's Cloud Run service exists once a deployment of it succeeded.
  const runServiceExists = (service: string) =>
    [...functions.functions.values()].some(
      (fn) =>
        fn.revisions > 0 && `projects/${fn.project}/locations/${fn.location}/services/${fn.id}` === service,
    );
  const eventarc = installEventarc(fake, new EventarcState({ serviceAccountExists, runServiceExists }));
  const network = (url: string) => {
    const ref = parseReference(url, project, "networks");
    return ref?.project === project && ref.scope === "global" ? ref.name : undefined;
  };
  const dns = installDns(fake);
  dns.iam = iam;
  dns.strictZones = options.strictZones ?? true;
  dns.networkExists = options.networkExists ?? ((url) => resources.networks.has(network(url) ?? ""));
  // GCE refuses to delete a network a private zone is bound to.
  resources.networkUsers.push((name, owner) =>
    [...dns.managedZones.values()]
      .filter((zone) => zone.privateVisibilityConfig?.networks.some((n) => network(n.networkUrl) === name))
      .map((zone) => `projects/${owner}/managedZones/${zone.name}`),
  );
  const url = await fake.start();
  return {
    fake,
    url,
    port: fake.port,
    project,
    projectNumber,
    iam,
    projectIam,
    secrets,
    dns,
    storage,
    compute,
    resources,
    functions,
    scheduler,
    eventarc,
    stop: () => fake.stop(),
  };
}
