// Minimal VS Code client for the FineCode WM language server (`finecode-wm lsp`).
//
// vscode-languageclient registers every command the server advertises in
// executeCommandProvider (finecode.runAction, finecode.runBatch, finecode.listProjects)
// as a VS Code command itself, so this extension must not register those ids again;
// its own commands are the *Pick variants. It calls the server through
// client.sendRequest(ExecuteCommandRequest.type, ...): the server then creates a
// work-done progress token and the client shows the cancellable progress notification.
import * as vscode from "vscode";
import {
  ExecuteCommandRequest,
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
  TransportKind,
} from "vscode-languageclient/node";

const RUN_ACTION = "finecode.runAction";
const RUN_BATCH = "finecode.runBatch";
const LIST_PROJECTS = "finecode.listProjects";

interface ProjectInfo {
  path: string;
  name: string;
  actions: string[];
}

interface ActionResult {
  project: string;
  action: string;
  status: "ok" | "failed" | "cancelled";
  result?: unknown;
  error?: string;
  seconds: number;
}

interface RunResult {
  results: ActionResult[];
  summary: { ok: number; failed: number; cancelled: number };
}

let client: LanguageClient | undefined;
let output: vscode.OutputChannel | undefined;

async function execute<T>(command: string, arg?: object): Promise<T> {
  if (!client) {
    throw new Error("FineCode language server is not running");
  }
  return client.sendRequest(ExecuteCommandRequest.type, {
    command,
    arguments: arg === undefined ? [] : [arg],
  }) as Promise<T>;
}

async function actionNames(): Promise<string[]> {
  const projects = await execute<ProjectInfo[] | null>(LIST_PROJECTS);
  const names = new Set<string>();
  for (const project of projects ?? []) {
    project.actions.forEach((a) => names.add(a));
  }
  return [...names].sort();
}

function report(run: RunResult, out: vscode.OutputChannel): void {
  out.appendLine(`--- ${new Date().toLocaleTimeString()}`);
  for (const r of run.results) {
    out.appendLine(`[${r.status}] ${r.project} · ${r.action} (${r.seconds.toFixed(2)}s)`);
    if (r.error) {
      out.appendLine(r.error.replace(/^/gm, "    "));
    } else if (r.result !== undefined && r.result !== null) {
      out.appendLine(JSON.stringify(r.result, null, 2).replace(/^/gm, "    "));
    }
  }
  const { ok, failed, cancelled } = run.summary;
  const summary = `FineCode: ${ok} ok, ${failed} failed, ${cancelled} cancelled`;
  out.appendLine(summary);
  const failures = run.results.filter((r) => r.status === "failed");
  if (failures.length === 0) {
    void vscode.window.showInformationMessage(summary);
    return;
  }
  const lines = failures.map(
    (r) => `${vscode.workspace.asRelativePath(r.project)} · ${r.action}: ${(r.error ?? "").split("\n")[0]}`,
  );
  void vscode.window
    .showErrorMessage(`${summary}. ${lines.join("; ")}`, "Show output")
    .then((choice) => choice && out.show(true));
}

async function run(command: string, arg: object): Promise<void> {
  try {
    const result = await execute<RunResult>(command, arg);
    if (output) {
      report(result, output);
    }
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    output?.appendLine(`${command} failed: ${message}`);
    void vscode.window.showErrorMessage(`FineCode: ${message}`);
  }
}

async function pickActions(canPickMany: boolean): Promise<string[] | undefined> {
  let names: string[];
  try {
    names = await actionNames();
  } catch (err) {
    void vscode.window.showErrorMessage(`FineCode: cannot list projects: ${String(err)}`);
    return undefined;
  }
  if (names.length === 0) {
    void vscode.window.showWarningMessage("FineCode: no actions found in this workspace");
    return undefined;
  }
  const placeHolder = canPickMany ? "Actions to run as one batch" : "Action to run";
  const picked = canPickMany
    ? await vscode.window.showQuickPick(names, { canPickMany: true, placeHolder })
    : await vscode.window.showQuickPick(names, { placeHolder }).then((n) => (n ? [n] : undefined));
  return picked && picked.length > 0 ? picked : undefined;
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  output = vscode.window.createOutputChannel("FineCode");
  context.subscriptions.push(output);

  const config = vscode.workspace.getConfiguration("finecode");
  const configured = config.get<string[]>("serverCommand", []);
  const [command, ...args] = configured.length > 0 ? configured : ["finecode-wm", "lsp"];
  const maxParallel = config.get<number | null>("maxParallel", null);

  const serverOptions: ServerOptions = { command, args, transport: TransportKind.stdio };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ scheme: "file", language: "python" }],
    outputChannel: output,
    initializationOptions: typeof maxParallel === "number" ? { maxParallel } : {},
  };
  client = new LanguageClient("finecode", "FineCode WM", serverOptions, clientOptions);

  context.subscriptions.push(
    vscode.commands.registerCommand("finecode.runActionPick", async () => {
      const picked = await pickActions(false);
      if (picked) {
        await run(RUN_ACTION, { action: picked[0] });
      }
    }),
    vscode.commands.registerCommand("finecode.runBatchPick", async () => {
      const picked = await pickActions(true);
      if (picked) {
        await run(RUN_BATCH, { actions: picked });
      }
    }),
  );

  try {
    await client.start();
  } catch (err) {
    void vscode.window.showErrorMessage(
      `FineCode: could not start "${[command, ...args].join(" ")}" (${String(err)}). ` +
        "Install finecode-wm or set finecode.serverCommand.",
    );
  }
}

export async function deactivate(): Promise<void> {
  const stopping = client;
  client = undefined;
  try {
    await stopping?.stop();
  } catch {
    // The server never started (or already died): nothing to shut down.
  }
}
