// Drives botDeploymentWorkflow the way the integration guide's TypeScript client does:
// by its name, with the guide's plain JSON object, the default data converter, and the
// `status` query, `pause`/`resume` signals and cancellation. Prints one JSON line.
//
//   node client.mjs ADDRESS TASK_QUEUE BOT_NAME [ENVIRONMENT]
import { Client, Connection } from '@temporalio/client';

const [address, taskQueue, botName, environment] = process.argv.slice(2);
const connection = await Connection.connect({ address });
const client = new Client({ connection });

async function statusWhen(handle, predicate) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const status = await handle.query('status');
    if (predicate(status)) return status;
    if (Date.now() > deadline) throw new Error(`status never matched: ${JSON.stringify(status)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function start(version) {
  return client.workflow.start('botDeploymentWorkflow', {
    workflowId: `deploy-${botName}-${Date.now()}`,
    taskQueue,
    args: [
      {
        botName,
        botType: 'discord',
        config: {},
        owner: 'user-123',
        version,
        // The contract's optional field: one of the bot's environments.
        ...(environment ? { environment } : {}),
      },
    ],
  });
}

const deployed = await start('1.0.0');
await deployed.signal('pause');
const paused = await statusWhen(deployed, (status) => status.state === 'paused');
await deployed.signal('resume');
const succeeded = await deployed.result();
const final = await deployed.query('status');

const cancelled = await start('2.0.0');
await cancelled.cancel();
const cancelledResult = await cancelled.result();

console.log(JSON.stringify({ paused, succeeded, final, cancelledResult }));
await connection.close();
