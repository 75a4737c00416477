// kubebake runs on Node 20 on purpose; the SDK's notice about its own future releases is not the user's concern
// on every command's stderr (the note about pinning the SDK lives in docs/architecture.md).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
export { main, kubebake, bakeImage } from "./main";
