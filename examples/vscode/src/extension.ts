// Minimal VS Code client for the FineCode WM language server (`finecode-wm lsp`).
//
// vscode-languageclient registers every command the server advertises in
// executeCommandProvider (finecode.runAction, finecode.runBatch, finecode.listProjects)
// as a VS Code command itself, so this extension must not register those ids again;
// its own commands are the *Pick variants.
//
// Progress: a run sends its OWN workDoneToken on the workspace/executeCommand request and
// renders that token in a notification (percentage bar, narrative, Cancel). Progress the
// server creates itself would be shown by vscode-languageclient at the window location (a
// status-bar spinner without a bar or a Cancel button).
import { randomUUID } from "crypto";
import * as vscode from "vscode";
import {
  ExecuteCommandRequest,
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
  TransportKind,
  WorkDoneProgress,
  WorkDoneProgressCancelNotification,
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

async function execute<T>(command: string, arg?: object, workDoneToken?: string): Promise<T> {
  if (!client) {
    throw new Error("FineCode language server is not running");
  }
  return client.sendRequest(ExecuteCommandRequest.type, {
    command,
    arguments: arg === undefined ? [] : [arg],
    workDoneToken,
  }) as Promise<T>;
}

/** Run a server command with its progress shown in a cancellable notification. */
async function withNotification<T>(title: string, command: string, arg: object): Promise<T> {
  const running = client;
  if (!running) {
    throw new Error("FineCode language server is not running");
  }
  const token = `finecode-vscode-${randomUUID()}`;
  return vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title, cancellable: true },
    async (progress, cancellation) => {
      let shown = 0;
      const listening = running.onProgress(WorkDoneProgress.type, token, (value) => {
        if (value.kind === "end") {
          return;
        }
        const percentage = value.percentage ?? shown;
        progress.report({ increment: Math.max(0, percentage - shown), message: value.message });
        shown = Math.max(shown, percentage);
      });
      const cancelling = cancellation.onCancellationRequested(() => {
        // The server cancels every child and answers normally, with `cancelled` statuses.
        void running.sendNotification(WorkDoneProgressCancelNotification.type, { token });
      });
      try {
        return await execute<T>(command, arg, token);
      } finally {
        cancelling.dispose();
        listening.dispose();
      }
    },
  );
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
    if (cancelled > 0) {
      void vscode.window.showWarningMessage(`${summary} (run cancelled)`);
    } else {
      void vscode.window.showInformationMessage(summary);
    }
    return;
  }
  const lines = failures.map(
    (r) => `${vscode.workspace.asRelativePath(r.project)} · ${r.action}: ${(r.error ?? "").split("\n")[0]}`,
  );
  void vscode.window
    .showErrorMessage(`${summary}. ${lines.join("; ")}`, "Show output")
    .then((choice) => choice && out.show(true));
}

async function run(command: string, actions: string[], arg: object): Promise<void> {
  try {
    const result = await withNotification<RunResult>(`FineCode: ${actions.join(", ")}`, command, arg);
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
    // The files the server reports problems for: they show in the Problems panel.
    documentSelector: [
      { scheme: "file", language: "python" },
      { scheme: "file", pattern: "**/pyproject.toml" },
    ],
    outputChannel: output,
    // A function, so a restart after the person trusts the workspace sends the new value.
    // Untrusted, the server runs nothing on its own; explicit commands still run.
    initializationOptions: () => ({
      trusted: vscode.workspace.isTrusted,
      ...(typeof maxParallel === "number" ? { maxParallel } : {}),
    }),
  };
  client = new LanguageClient("finecode", "FineCode WM", serverOptions, clientOptions);

  context.subscriptions.push(
    vscode.commands.registerCommand("finecode.runActionPick", async () => {
      const picked = await pickActions(false);
      if (picked) {
        await run(RUN_ACTION, picked, { action: picked[0] });
      }
    }),
    vscode.commands.registerCommand("finecode.runBatchPick", async () => {
      const picked = await pickActions(true);
      if (picked) {
        await run(RUN_BATCH, picked, { actions: picked });
      }
    }),
    vscode.workspace.onDidGrantWorkspaceTrust(() => {
      void client?.restart();
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
