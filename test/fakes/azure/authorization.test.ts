import { randomUUID } from "node:crypto";
import { AuthorizationManagementClient } from "@azure/arm-authorization";
import { ManagedServiceIdentityClient } from "@azure/arm-msi";
import { ArmFake } from "./arm-fake";
import {
  AUTHORIZATION_SPECS,
  AuthorizationState,
  BUILT_IN_ROLES,
  installAuthorization,
  roleDefinitionId,
} from "./authorization";
import { installMsi, MSI_API_VERSION, MSI_SPECS, MsiState } from "./msi";
import { ResourceGroupsState } from "./resource-groups";
import { clientOptions, credential, failure } from "./sdk";

const SUB = "00000000-0000-0000-0000-0000000000aa";
const SUB_SCOPE = `/subscriptions/${SUB}`;
const RG_SCOPE = `${SUB_SCOPE}/resourceGroups/rg`;
const VAULT_SCOPE = `${RG_SCOPE}/providers/Microsoft.KeyVault/vaults/kb-vault`;
const READER = roleDefinitionId(SUB, BUILT_IN_ROLES.Reader);
const SECRETS_USER = roleDefinitionId(SUB, BUILT_IN_ROLES["Key Vault Secrets User"]);

let fake: ArmFake;
let groups: ResourceGroupsState;
let rbac: AuthorizationState;
let client: AuthorizationManagementClient;
let msi: ManagedServiceIdentityClient;

beforeEach(async () => {
  fake = await ArmFake.start([...AUTHORIZATION_SPECS, ...MSI_SPECS]);
  groups = new ResourceGroupsState();
  groups.add(SUB, "rg", "westeurope");
  groups.add(SUB, "other", "westeurope");
  const identities = installMsi(fake, new MsiState({ groups }));
  rbac = installAuthorization(fake, new AuthorizationState({ groups, directories: [identities] }));
  // Role assignment operations carry 2022-04-01 as a constant in this client: nothing to pin.
  client = new AuthorizationManagementClient(credential, SUB, clientOptions(fake));
  msi = new ManagedServiceIdentityClient(credential, SUB, clientOptions(fake, MSI_API_VERSION));
});
afterEach(async () => {
  await fake.stop();
});

const newPrincipal = async (name = "kb-nodes") =>
  (await msi.userAssignedIdentities.createOrUpdate("rg", name, { location: "westeurope" })).principalId!;
const assign = (
  scope: string,
  role: string,
  principalId: string,
  principalType?: "ServicePrincipal" | "User",
) =>
  client.roleAssignments.create(scope, randomUUID(), {
    roleDefinitionId: role,
    principalId,
    ...(principalType ? { principalType } : {}),
  });

test("an identity's principal gets roles at subscription, group and resource scope", async () => {
  const principal = await newPrincipal();
  for (const scope of [SUB_SCOPE, RG_SCOPE, VAULT_SCOPE]) {
    const name = randomUUID();
    const created = await client.roleAssignments.create(scope, name, {
      roleDefinitionId: SECRETS_USER,
      principalId: principal,
    });
    expect(created).toMatchObject({
      id: `${scope}/providers/Microsoft.Authorization/roleAssignments/${name}`,
      name,
      type: "Microsoft.Authorization/roleAssignments",
      scope,
      roleDefinitionId: SECRETS_USER,
      principalId: principal,
      principalType: "ServicePrincipal",
    });
    expect((await client.roleAssignments.get(scope, name)).id).toBe(created.id);
  }
  expect(rbac.forPrincipal(principal).map((a) => a.scope)).toEqual([SUB_SCOPE, RG_SCOPE, VAULT_SCOPE]);
  expect(
    fake.log.filter((l) => l.method === "PUT" && l.operationId === "RoleAssignments_Create"),
  ).toHaveLength(3);
  expect(fake.violations).toEqual([]);
});

test("the role must be a known built-in, named by its id in the scope's subscription", async () => {
  const principal = await newPrincipal();
  const attempts = [
    [
      `/providers/Microsoft.Authorization/roleDefinitions/${BUILT_IN_ROLES.Reader}`,
      "InvalidRoleDefinitionId",
    ],
    [
      roleDefinitionId("00000000-0000-0000-0000-0000000000bb", BUILT_IN_ROLES.Reader),
      "InvalidRoleDefinitionId",
    ],
    [roleDefinitionId(SUB, "00000000-1111-2222-3333-444444444444"), "RoleDefinitionDoesNotExist"],
  ];
  for (const [role, code] of attempts)
    expect(await failure(assign(RG_SCOPE, role!, principal))).toMatchObject({ status: 400, code });
  expect(
    await failure(
      client.roleAssignments.create(RG_SCOPE, "not-a-guid", {
        roleDefinitionId: READER,
        principalId: principal,
      }),
    ),
  ).toMatchObject({ status: 400, code: "InvalidRoleAssignmentId" });
  expect(await failure(assign(`${SUB_SCOPE}/resourceGroups/nope`, READER, principal))).toMatchObject({
    status: 404,
    code: "ResourceGroupNotFound",
  });
  expect(rbac.all()).toEqual([]);
  expect(fake.violations).toEqual([]);
});

test("the principal must exist in the directory, with the type the request names", async () => {
  const stranger = randomUUID();
  expect(await failure(assign(RG_SCOPE, READER, stranger))).toMatchObject({
    status: 400,
    code: "PrincipalNotFound",
    message: expect.stringContaining(`does not exist in the directory ${rbac.tenantId}`),
  });
  // principalType does not make an unknown principal known.
  expect(await failure(assign(RG_SCOPE, READER, stranger, "ServicePrincipal"))).toMatchObject({
    code: "PrincipalNotFound",
  });
  rbac.addPrincipal(stranger, "User");
  expect((await assign(RG_SCOPE, READER, stranger)).principalType).toBe("User");
  const identity = await newPrincipal();
  expect(await failure(assign(RG_SCOPE, READER, identity, "User"))).toMatchObject({
    status: 400,
    code: "UnmatchedPrincipalType",
  });
  expect(fake.violations).toEqual([]);
});

test("a new principal is not found for the first attempts while it replicates; a retry gets through", async () => {
  rbac.replicationDelayAttempts = 2;
  const principal = await newPrincipal();
  const codes: (string | undefined)[] = [];
  let created;
  for (let attempt = 0; attempt < 5 && !created; attempt++) {
    created = await assign(RG_SCOPE, READER, principal).catch(
      (e: { code?: string }) => void codes.push(e.code),
    );
  }
  expect(codes).toEqual(["PrincipalNotFound", "PrincipalNotFound"]);
  expect(created).toMatchObject({ principalId: principal });

  // Naming the principal type skips the wait, as Azure documents.
  const fresh = await newPrincipal("kb-other");
  expect((await assign(RG_SCOPE, READER, fresh, "ServicePrincipal")).principalId).toBe(fresh);
  expect(fake.violations).toEqual([]);
});

test("one assignment per role, principal and scope; a name cannot be reused for another", async () => {
  const principal = await newPrincipal();
  const name = randomUUID();
  const body = { roleDefinitionId: READER, principalId: principal };
  await client.roleAssignments.create(RG_SCOPE, name, body);
  // The same PUT again is idempotent.
  expect((await client.roleAssignments.create(RG_SCOPE, name, body)).name).toBe(name);
  expect(await failure(assign(RG_SCOPE, READER, principal))).toMatchObject({
    status: 409,
    code: "RoleAssignmentExists",
    message: "The role assignment already exists.",
  });
  expect(
    await failure(client.roleAssignments.create(RG_SCOPE, name, { ...body, roleDefinitionId: SECRETS_USER })),
  ).toMatchObject({ status: 400, code: "RoleAssignmentUpdateNotPermitted" });
  // Another scope or another role is another assignment.
  await assign(SUB_SCOPE, READER, principal);
  await assign(RG_SCOPE, SECRETS_USER, principal);
  expect(rbac.forPrincipal(principal)).toHaveLength(3);
  expect(
    fake.log.filter((l) => l.method === "PUT" && l.path.includes("roleAssignments")).map((l) => l.status),
  ).toEqual([201, 200, 409, 400, 201, 201]);
  expect(fake.violations).toEqual([]);
});

test("lists: at, above and below a scope; atScope(); by principal", async () => {
  const a = await newPrincipal("a-id");
  const b = await newPrincipal("b-id");
  await assign(SUB_SCOPE, READER, a);
  await assign(RG_SCOPE, READER, b);
  await assign(VAULT_SCOPE, SECRETS_USER, a);
  await assign(`${SUB_SCOPE}/resourceGroups/other`, READER, b);
  const scopes = async (scope: string, filter?: string) => {
    const found: string[] = [];
    for await (const x of client.roleAssignments.listForScope(scope, { filter })) found.push(x.scope!);
    return found.sort();
  };
  expect(await scopes(RG_SCOPE)).toEqual([SUB_SCOPE, RG_SCOPE, VAULT_SCOPE]);
  expect(await scopes(RG_SCOPE, "atScope()")).toEqual([SUB_SCOPE, RG_SCOPE]);
  expect(await scopes(VAULT_SCOPE, "atScope()")).toEqual([SUB_SCOPE, RG_SCOPE, VAULT_SCOPE]);
  expect(await scopes(SUB_SCOPE, `principalId eq '${b}'`)).toEqual([
    `${SUB_SCOPE}/resourceGroups/other`,
    RG_SCOPE,
  ]);
  expect(await scopes(RG_SCOPE, `atScope() and principalId eq '${a}'`)).toEqual([SUB_SCOPE]);
  expect(await failure(scopes(RG_SCOPE, "roleDefinitionId eq 'x'"))).toMatchObject({ status: 400 });
  expect(fake.violations).toEqual([]);
});

test("delete answers the assignment, then 204; deleting the group removes the assignments in it", async () => {
  const principal = await newPrincipal();
  const name = randomUUID();
  await client.roleAssignments.create(RG_SCOPE, name, { roleDefinitionId: READER, principalId: principal });
  expect((await client.roleAssignments.delete(RG_SCOPE, name))?.name).toBe(name);
  await client.roleAssignments.delete(RG_SCOPE, name);
  expect(fake.log.filter((l) => l.method === "DELETE").map((l) => l.status)).toEqual([200, 204]);
  expect(await failure(client.roleAssignments.get(RG_SCOPE, name))).toMatchObject({
    status: 404,
    code: "RoleAssignmentNotFound",
  });

  await assign(SUB_SCOPE, READER, principal);
  await assign(VAULT_SCOPE, SECRETS_USER, principal);
  groups.remove(SUB, "rg");
  expect(rbac.all().map((a) => a.scope)).toEqual([SUB_SCOPE]);
  expect(fake.violations).toEqual([]);
});
