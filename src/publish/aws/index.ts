/** The AWS publisher's one entry, and what a shell needs to build its clients and check its options. */
export { publishAws, AWS_BUILDER_TYPE, type AwsPublishOptions } from "./publish";
export { publishClients, type PublishClients } from "./clients";
export { checkTargets, preflightAws } from "./preflight";
