export { publishGce, type GcePublishOptions } from "./publish";
