/**
 * Before anything is uploaded: the regions exist, there are credentials, and the account may register
 * images. Each failure is one line with the cloud-error exit code.
 */
import { DescribeImagesCommand, RegisterImageCommand } from "@aws-sdk/client-ec2";
import { GetCallerIdentityCommand } from "@aws-sdk/client-sts";
import { AWS_REGIONS, regionProblem } from "../../cluster/regions";
import { ExitCode, KubebakeError, invalidInput } from "../../errors";
import { asCloudError, type PublishClients } from "./clients";

export interface AwsTargets {
  region: string;
  /** More regions the AMI is copied to. */
  regions: string[];
  /** Accounts granted launch permission. */
  shareWith: string[];
}

const cloudError = (message: string) => new KubebakeError(message, ExitCode.cloudFailed);
const codeOf = (error: unknown) =>
  (error as { Code?: string; name?: string })?.Code ?? (error as Error)?.name ?? "";

/** The options alone, no call: a region that does not exist, an account id that cannot be one. */
export function checkTargets(targets: AwsTargets): void {
  const all: [string, string][] = [
    ["--region", targets.region],
    ...targets.regions.map((r): [string, string] => ["--regions", r]),
  ];
  for (const [flag, region] of all) {
    if (!(AWS_REGIONS as readonly string[]).includes(region))
      throw cloudError(`${flag} ${region}: ${regionProblem(region)}`);
  }
  for (const account of targets.shareWith) {
    if (!/^\d{12}$/.test(account))
      throw invalidInput(`--share-with ${JSON.stringify(account)}: expected a 12-digit AWS account id`);
  }
}

/** Returns the account id. */
export async function preflightAws(clients: PublishClients, targets: AwsTargets): Promise<string> {
  checkTargets(targets);
  const home = clients.inRegion(targets.region);
  let account: string;
  try {
    account = (await home.sts.send(new GetCallerIdentityCommand({}))).Account!;
  } catch (error) {
    if (codeOf(error) === "CredentialsProviderError")
      throw cloudError(
        "no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run on a machine with a role",
      );
    throw asCloudError(clients.calls, error);
  }
  // DryRun answers DryRunOperation when the call would be allowed and UnauthorizedOperation when not.
  const allowed = async (region: string, action: string, dryRun: () => Promise<unknown>) => {
    try {
      await dryRun();
    } catch (error) {
      if (codeOf(error) === "DryRunOperation") return;
      if (/Unauthorized|AccessDenied|AuthFailure/.test(codeOf(error)))
        throw cloudError(`account ${account} may not ${action} in ${region} (${codeOf(error)})`);
      throw asCloudError(clients.calls, error);
    }
    throw cloudError(`${action} in ${region}: expected a DryRun answer from EC2, got success`);
  };
  await allowed(targets.region, "register AMIs (ec2:RegisterImage)", () =>
    home.ec2.send(new RegisterImageCommand({ Name: "kubebake-preflight", DryRun: true })),
  );
  for (const region of targets.regions) {
    await allowed(region, "list AMIs (ec2:DescribeImages)", () =>
      clients.inRegion(region).ec2.send(new DescribeImagesCommand({ Owners: ["self"], DryRun: true })),
    );
  }
  return account;
}
