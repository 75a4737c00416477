/**
 * The DNS-discovery Azure Function app (Node.js v4 programming model): its two functions, registered when
 * the worker loads this file (package.json's main). The timer repairs whatever changed unseen, every
 * minute; Event Grid makes a change of the cluster's VMs visible within seconds. A failed timer run is
 * tried again twice, ten seconds apart (Event Grid retries its own deliveries). The work is in handler.ts.
 */
import { app } from "@azure/functions";
import { ARM_URL } from "../../src/discover/azure-rest";
import { AZURE_FUNCTIONS, createAzureHandler, SCHEDULE } from "./handler";
import { managedIdentityHeaders } from "./identity";

export { createAzureHandler } from "./handler";

const handler = createAzureHandler({ armUrl: ARM_URL, headers: managedIdentityHeaders() });

app.timer(AZURE_FUNCTIONS.schedule, {
  schedule: SCHEDULE,
  handler: handler.timer,
  retry: { strategy: "fixedDelay", maxRetryCount: 2, delayInterval: { seconds: 10 } },
});
app.eventGrid(AZURE_FUNCTIONS.events, { handler: handler.eventGrid });
