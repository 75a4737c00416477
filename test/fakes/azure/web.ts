/**
 * App Service (Microsoft.Web 2024-04-01) for Azure Functions: plans (Y1 Consumption or FC1 Flex
 * Consumption, both described in 2024-04-01), function apps with their application settings, and the
 * functions their package holds. Site names are global (<name>.azurewebsites.net). A GET of a site never
 * shows its application settings (Azure answers them only through ListApplicationSettings). Creates are
 * asynchronous (202 + Azure-AsyncOperation).
 */
import { armError, type ArmFake, type ArmRequest, type ArmResponse } from "./arm-fake";
import type { Json, JsonObject } from "./openapi";
import {
  asArray,
  asObject,
  badRequest,
  guidFor,
  Jobs,
  lower,
  preconditionFailed,
  resourceNotFound,
  succeedLater,
} from "./model-kit";

const WEB = "web/resource-manager/Microsoft.Web/stable/2024-04-01";
export const WEB_SPECS = [`${WEB}/AppServicePlans.json`, `${WEB}/WebApps.json`];

/** Settings Flex Consumption refuses: it deploys from functionAppConfig and picks the runtime there. */
const NOT_ON_FLEX = [
  "WEBSITE_RUN_FROM_PACKAGE",
  "FUNCTIONS_WORKER_RUNTIME",
  "FUNCTIONS_EXTENSION_VERSION",
  "WEBSITE_CONTENTSHARE",
  "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
  "WEBSITE_NODE_DEFAULT_VERSION",
];

const PLAN_SKUS: Record<string, { tier: string; family: string }> = {
  Y1: { tier: "Dynamic", family: "Y" },
  FC1: { tier: "FlexConsumption", family: "FC" },
};

export interface FunctionSite {
  id: string;
  name: string;
  resource: JsonObject;
  appSettings: Record<string, string>;
  /** The functions of the deployed package, as discoverFunctions found them. */
  functions: string[];
  etag: string;
}

interface Plan {
  resource: JsonObject;
  etag: string;
}

export class WebState {
  readonly plans = new Map<string, Plan>();
  /** By lower-case name: site names are global. */
  readonly sites = new Map<string, FunctionSite>();
  /**
   * The function names of a site's package (WEBSITE_RUN_FROM_PACKAGE or functionAppConfig), read when the
   * create ends and when the settings change; default: none. The test or the assembled cloud reads the zip.
   */
  discoverFunctions: (site: FunctionSite) => string[] | Promise<string[]> = () => [];
  readonly jobs = new Jobs();
  private revision = 0;

  settle(): Promise<void> {
    return this.jobs.settle();
  }

  site(id: string): FunctionSite | undefined {
    const site = this.sites.get(lower(id.split("/").pop()!));
    return site && lower(site.id) === lower(id) ? site : undefined;
  }

  /** Whether `/…/providers/Microsoft.Web/sites/<site>/functions/<name>` exists (Event Grid's destination). */
  functionExists(id: string): boolean {
    const [siteId, name] = id.split(/\/functions\//i) as [string, string | undefined];
    return !!name && !!this.site(siteId)?.functions.some((f) => lower(f) === lower(name));
  }

  nextEtag(): string {
    return `"${++this.revision}"`;
  }
}

export function installWeb(fake: ArmFake, state = new WebState()): WebState {
  fake.on("AppServicePlans_CreateOrUpdate", (req) => createPlan(fake, state, req));
  fake.on("AppServicePlans_Get", (req) => {
    const plan = state.plans.get(lower(req.path));
    return plan
      ? { status: 200, body: planView(state, plan) }
      : resourceNotFound(req, "Microsoft.Web/serverfarms");
  });
  fake.on("AppServicePlans_Delete", (req) => {
    const plan = state.plans.get(lower(req.path));
    if (!plan) return { status: 204 };
    const users = sitesOn(state, req.path);
    if (users.length > 0)
      return armError(
        409,
        "Conflict",
        `Server farm '${String(plan.resource.name)}' cannot be deleted because it has web app(s) ${users.map((s) => s.name).join(",")} assigned to it.`,
      );
    state.plans.delete(lower(req.path));
    return { status: 200 };
  });
  fake.on("WebApps_CreateOrUpdate", (req) => createSite(fake, state, req));
  fake.on("WebApps_Get", (req) => {
    const site = state.site(req.path);
    return site ? { status: 200, body: siteView(site) } : resourceNotFound(req, "Microsoft.Web/sites");
  });
  fake.on("WebApps_Delete", (req) => {
    const site = state.site(req.path);
    if (!site) return resourceNotFound(req, "Microsoft.Web/sites");
    state.sites.delete(lower(site.name));
    const planId = String(asObject(site.resource.properties).serverFarmId);
    // As described: an empty plan goes with its last app unless deleteEmptyServerFarm=false.
    if (req.query.get("deleteEmptyServerFarm") !== "false" && sitesOn(state, planId).length === 0)
      state.plans.delete(lower(planId));
    return { status: 200 };
  });
  fake.on("WebApps_UpdateApplicationSettings", (req) => {
    const site = state.site(req.path.replace(/\/config\/appsettings$/i, ""));
    if (!site) return resourceNotFound(req, "Microsoft.Web/sites");
    const settings = asObject(asObject(req.body).properties) as Record<string, string>;
    const refused = checkSettings(state, site.resource, settings);
    if (refused) return refused;
    site.appSettings = { ...settings };
    readFunctions(state, site);
    return { status: 200, body: settingsView(site) };
  });
  fake.on("WebApps_ListApplicationSettings", (req) => {
    const site = state.site(req.path.replace(/\/config\/appsettings\/list$/i, ""));
    return site ? { status: 200, body: settingsView(site) } : resourceNotFound(req, "Microsoft.Web/sites");
  });
  // Described (POST …/syncfunctiontriggers, 204) but unanswered before (501): Linux Consumption apps whose
  // WEBSITE_RUN_FROM_PACKAGE is a URL need it after a deployment, and the host then reads the package again.
  fake.on("WebApps_SyncFunctionTriggers", (req) => {
    const site = state.site(req.path.replace(/\/syncfunctiontriggers$/i, ""));
    if (!site) return resourceNotFound(req, "Microsoft.Web/sites");
    readFunctions(state, site);
    return { status: 204 };
  });
  fake.on("WebApps_ListFunctions", (req) => {
    const site = state.site(req.path.replace(/\/functions$/i, ""));
    if (!site) return resourceNotFound(req, "Microsoft.Web/sites");
    const value = site.functions.map((name) => ({
      id: `${site.id}/functions/${name}`,
      name: `${site.name}/${name}`,
      type: "Microsoft.Web/sites/functions",
      properties: { function_app_id: site.id, language: "node", isDisabled: false, config: {} },
    }));
    return { status: 200, body: { value } };
  });
  return state;
}

const sitesOn = (state: WebState, planId: string) =>
  [...state.sites.values()].filter(
    (s) => lower(String(asObject(s.resource.properties).serverFarmId)) === lower(planId),
  );

function createPlan(fake: ArmFake, state: WebState, req: ArmRequest): ArmResponse {
  const existing = state.plans.get(lower(req.path));
  const precondition = preconditionFailed(req, existing?.etag);
  if (precondition) return precondition;
  const body = req.body as JsonObject;
  const skuName = String(asObject(body.sku).name ?? "");
  const known = PLAN_SKUS[skuName];
  if (!known)
    return badRequest(
      "BadRequest",
      `The fake models plan skus ${Object.keys(PLAN_SKUS).join(", ")}, not '${skuName}'.`,
    );
  const properties = asObject(body.properties);
  if (skuName === "FC1" && properties.reserved !== true)
    return badRequest(
      "BadRequest",
      "Flex Consumption plans are Linux only: properties.reserved must be true.",
    );
  const plan: Plan = {
    resource: {
      ...body,
      id: req.path,
      name: req.params.name!,
      type: "Microsoft.Web/serverfarms",
      sku: { name: skuName, tier: known.tier, size: skuName, family: known.family, capacity: 0 },
      properties: {
        ...properties,
        reserved: properties.reserved === true,
        status: "Creating",
        provisioningState: "InProgress",
      },
    },
    etag: state.nextEtag(),
  };
  state.plans.set(lower(req.path), plan);
  const finish = state.jobs.add(() => {
    Object.assign(asObject(plan.resource.properties), { status: "Ready", provisioningState: "Succeeded" });
  });
  return { status: 202, body: planView(state, plan), headers: succeedLater(fake, req, finish) };
}

function planView(state: WebState, plan: Plan): JsonObject {
  return {
    ...plan.resource,
    properties: {
      ...asObject(plan.resource.properties),
      numberOfSites: sitesOn(state, String(plan.resource.id)).length,
      resourceGroup: String(plan.resource.id).split("/")[4]!,
      geoRegion: String(plan.resource.location),
    },
  };
}

function createSite(fake: ArmFake, state: WebState, req: ArmRequest): ArmResponse {
  const name = req.params.name!;
  const known = state.sites.get(lower(name));
  const existing = known && lower(known.id) === lower(req.path) ? known : undefined;
  if (known && !existing) return armError(409, "Conflict", `Website with given name ${name} already exists.`);
  const precondition = preconditionFailed(req, existing?.etag);
  if (precondition) return precondition;
  if (!/^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,58}[a-zA-Z0-9])?$/.test(name) || name.length < 2)
    return badRequest(
      "BadRequest",
      `The site name '${name}' is invalid: 2-60 letters, digits or hyphens, not at either end.`,
    );
  const body = req.body as JsonObject;
  const properties = asObject(body.properties);
  const planId = String(properties.serverFarmId ?? "");
  const plan = state.plans.get(lower(planId));
  if (!plan) return armError(404, "NotFound", `Cannot find ServerFarm with name ${planId.split("/").pop()}.`);
  const config = asObject(properties.siteConfig);
  const settings = Object.fromEntries(
    asArray(config.appSettings).map((s) => [String(asObject(s).name), String(asObject(s).value ?? "")]),
  );
  const refused = checkSite(body, plan) ?? checkSettings(state, { ...body, properties }, settings);
  if (refused) return refused;

  const { appSettings: _settings, ...shownConfig } = config;
  void _settings;
  const hostName = `${name.toLowerCase()}.azurewebsites.net`;
  const site: FunctionSite = existing ?? {
    id: req.path,
    name,
    resource: {},
    appSettings: {},
    functions: [],
    etag: "",
  };
  site.resource = {
    ...body,
    id: site.id,
    name,
    type: "Microsoft.Web/sites",
    properties: {
      ...properties,
      siteConfig: shownConfig,
      state: "Running",
      enabled: true,
      hostNames: [hostName],
      defaultHostName: hostName,
      reserved: asObject(plan.resource.properties).reserved === true,
      resourceGroup: req.params.resourceGroupName!,
      sku: String(asObject(plan.resource.sku).tier),
      httpsOnly: properties.httpsOnly === true,
    },
  };
  site.appSettings = settings;
  site.etag = state.nextEtag();
  state.sites.set(lower(name), site);
  const finish = state.jobs.add(() => readFunctions(state, site));
  return { status: 202, body: siteView(site), headers: succeedLater(fake, req, finish) };
}

/** What the site's plan decides: Flex needs functionAppConfig (and no linuxFxVersion), Y1 refuses it. */
function checkSite(body: JsonObject, plan: Plan): ArmResponse | undefined {
  const properties = asObject(body.properties);
  const flex = asObject(plan.resource.sku).name === "FC1";
  const flexConfig = asObject(properties.functionAppConfig);
  if (!flex && properties.functionAppConfig !== undefined)
    return badRequest("BadRequest", "functionAppConfig is supported on Flex Consumption (FC1) plans only.");
  if (flex && (!asObject(flexConfig.deployment).storage || !flexConfig.runtime))
    return badRequest(
      "BadRequest",
      "A Flex Consumption app needs functionAppConfig.deployment.storage and functionAppConfig.runtime.",
    );
  if (flex && asObject(properties.siteConfig).linuxFxVersion)
    return badRequest(
      "BadRequest",
      "linuxFxVersion is not supported on Flex Consumption: set functionAppConfig.runtime.",
    );
  const linuxPlan = asObject(plan.resource.properties).reserved === true;
  const linuxKind = /linux/i.test(String(body.kind ?? ""));
  if (linuxPlan !== linuxKind)
    return badRequest(
      "BadRequest",
      `A ${linuxPlan ? "Linux" : "Windows"} plan cannot host an app of kind '${String(body.kind)}'.`,
    );
  const identity = asObject(body.identity);
  const assigned = Object.keys(asObject(identity.userAssignedIdentities)).map(lower);
  const reference = properties.keyVaultReferenceIdentity;
  if (typeof reference === "string" && reference !== "SystemAssigned" && !assigned.includes(lower(reference)))
    return badRequest(
      "BadRequest",
      `keyVaultReferenceIdentity ${reference} is not an identity assigned to the app.`,
    );
  return undefined;
}

function checkSettings(
  state: WebState,
  site: JsonObject,
  settings: Record<string, string>,
): ArmResponse | undefined {
  const plan = state.plans.get(lower(String(asObject(site.properties).serverFarmId)));
  if (asObject(plan?.resource.sku).name !== "FC1") return undefined;
  const refused = Object.keys(settings).filter((k) => NOT_ON_FLEX.includes(k.toUpperCase()));
  if (refused.length === 0) return undefined;
  return badRequest(
    "BadRequest",
    `The app settings ${refused.join(", ")} are not supported with Flex Consumption.`,
  );
}

function readFunctions(state: WebState, site: FunctionSite): void {
  state.jobs.track(async () => {
    site.functions = [...(await state.discoverFunctions(site))];
  });
}

function siteView(site: FunctionSite): JsonObject {
  const view = structuredClone(site.resource);
  const identity = asObject(view.identity);
  if (identity.userAssignedIdentities)
    identity.userAssignedIdentities = Object.fromEntries(
      Object.keys(asObject(identity.userAssignedIdentities)).map((id) => [
        id,
        { principalId: guidFor(`${lower(id)}:principal`), clientId: guidFor(`${lower(id)}:client`) },
      ]),
    );
  return view;
}

function settingsView(site: FunctionSite): JsonObject {
  return {
    id: `${site.id}/config/appsettings`,
    name: "appsettings",
    type: "Microsoft.Web/sites/config",
    properties: site.appSettings as Record<string, Json>,
  };
}
