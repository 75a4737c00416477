import { didYouMean } from "../util/did-you-mean";

/**
 * The AWS regions of the commercial partition, kept in the code so that a typo is refused at validate, not
 * as a raw endpoint error at apply. A new region is one line here. The launcher does not assume the
 * partition: every ARN it writes takes it from the caller's ARN (STS GetCallerIdentity). Regions of other
 * partitions are refused here only because kubebake has not been tried there (endpoints, service
 * principals, image publishing).
 */
export const AWS_REGIONS = [
  "af-south-1",
  "ap-east-1",
  "ap-east-2",
  "ap-northeast-1",
  "ap-northeast-2",
  "ap-northeast-3",
  "ap-south-1",
  "ap-south-2",
  "ap-southeast-1",
  "ap-southeast-2",
  "ap-southeast-3",
  "ap-southeast-4",
  "ap-southeast-5",
  "ap-southeast-6",
  "ap-southeast-7",
  "ca-central-1",
  "ca-west-1",
  "eu-central-1",
  "eu-central-2",
  "eu-north-1",
  "eu-south-1",
  "eu-south-2",
  "eu-west-1",
  "eu-west-2",
  "eu-west-3",
  "il-central-1",
  "me-central-1",
  "me-south-1",
  "mx-central-1",
  "sa-east-1",
  "us-east-1",
  "us-east-2",
  "us-west-1",
  "us-west-2",
] as const;

export function regionProblem(input: unknown): string {
  if (typeof input !== "string") return "expected an AWS region such as eu-west-1";
  if (/^(cn|us-gov|us-iso[a-z]*|eusc)-/.test(input)) {
    return `expected a region of the standard AWS partition; ${input} is in another partition (aws-cn, aws-us-gov…), which kubebake does not support yet`;
  }
  return `expected an AWS region such as eu-west-1, got ${JSON.stringify(input)}${didYouMean(input, AWS_REGIONS)}`;
}

/** Availability zones are their region's name and one letter (eu-west-1a). */
export const zoneOfRegion = (zone: string, region: string) =>
  zone.startsWith(region) && /^[a-z]$/.test(zone.slice(region.length));
