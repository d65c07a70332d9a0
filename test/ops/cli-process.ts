// Test helpers for the `mimamori` command: runs the compiled CLI (bin/mimamori.js, so run
// `npm run build` first) as an operator would, in a test folder, with a config file written there.

import type { Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import YAML from 'yaml'

export const CLI = fileURLToPath(new URL('../../bin/mimamori.js', import.meta.url))
export const FIXTURES = fileURLToPath(new URL('../fixtures/csv/', import.meta.url))

export interface CliResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

export interface CliOptions {
  cwd?: string
  /** added to the environment; undefined removes a variable */
  env?: Record<string, string | undefined>
  /** a hung command fails the test instead of the whole run */
  timeoutMs?: number
}

/** The environment of every run: the test's own MIMAMORI_* variables never leak in. */
function cliEnv (extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { LOG_LEVEL: 'silent' }
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('MIMAMORI_') && name !== 'LOG_LEVEL') env[name] = value
  }
  env.LOG_LEVEL = 'silent'
  for (const [name, value] of Object.entries(extra)) {
    if (value === undefined) delete env[name]
    else env[name] = value
  }
  return env
}

/** A running CLI process and what it has written so far. */
export interface CliProcess {
  child: ChildProcess
  stdout: () => string
  stderr: () => string
  /** resolves with the first match of the pattern in stdout, rejects if the process exits first */
  waitForStdout: (pattern: RegExp, timeoutMs?: number) => Promise<RegExpExecArray>
  exited: Promise<CliResult>
}

/** Starts `mimamori ARGS`; the process is killed in teardown if it still runs. */
export function startCli (t: Test, args: string[], options: CliOptions = {}): CliProcess {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: options.cwd ?? process.cwd(), env: cliEnv(options.env), stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk; child.emit('stdout') })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const exited = once(child, 'close').then(([code, signal]) =>
    ({ code: code as number | null, signal: signal as NodeJS.Signals | null, stdout, stderr }))

  const waitForStdout = async (pattern: RegExp, timeoutMs = 60_000): Promise<RegExpExecArray> =>
    await new Promise((resolve, reject) => {
      const check = (): void => {
        const match = pattern.exec(stdout)
        if (match === null) return
        cleanup()
        resolve(match)
      }
      const onClose = (): void => {
        cleanup()
        reject(new Error(`mimamori ${args[0] ?? ''} exited before printing ${String(pattern)}\n` +
          `stdout: ${stdout}\nstderr: ${stderr}`))
      }
      const timer = setTimeout(() => {
        cleanup()
        reject(new Error(`mimamori ${args[0] ?? ''} did not print ${String(pattern)} in time\nstdout: ${stdout}`))
      }, timeoutMs)
      const cleanup = (): void => {
        clearTimeout(timer)
        child.off('stdout', check)
        child.off('close', onClose)
      }
      child.on('stdout', check)
      child.once('close', onClose)
      check()
    })

  return { child, stdout: () => stdout, stderr: () => stderr, waitForStdout, exited }
}

/** Runs `mimamori ARGS` to its end. */
export async function runCli (t: Test, args: string[], options: CliOptions = {}): Promise<CliResult> {
  const run = startCli(t, args, options)
  const timer = setTimeout(() => run.child.kill('SIGKILL'), options.timeoutMs ?? 60_000)
  const result = await run.exited
  clearTimeout(timer)
  return result
}

/** Writes dir/mimamori.yaml: data in dir/data, HTTP on any free port, plus the given settings. */
export function writeConfig (dir: string, settings: Record<string, unknown> = {}, name = 'mimamori.yaml'): string {
  const file = join(dir, name)
  writeFileSync(file, YAML.stringify({
    dataDir: join(dir, 'data'), http: { port: 0 }, log: { level: 'silent' }, ...settings
  }))
  return file
}

/** The JSON a command printed on stdout; fails the test with the output when it is not JSON. */
export function parseJson (t: Test, result: CliResult): any {
  try {
    return JSON.parse(result.stdout)
  } catch {
    t.fail(`stdout is not JSON:\n${result.stdout}\nstderr:\n${result.stderr}`)
    return undefined
  }
}
