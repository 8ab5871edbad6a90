// Loads the Tally dashboard in headless Chromium, clicks "+ Increment", waits until every
// node's displayed value changed; then creates the named counter "doors" through the
// dashboard's form (by 3), clicks its row's +1 and −1, and after each waits until every node's
// cell and the converged view show the expected value; saves a screenshot.
//
//   node dashboard-test.mjs DASHBOARD_URL SCREENSHOT_PATH [EXPECTED_NODES]
//
// Only loopback traffic is allowed: every other request is aborted, name resolution of any
// other host fails, and Chromium's background services are off.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";

const [url, screenshotArg, expectedArg] = process.argv.slice(2);
if (!url || !screenshotArg) {
  console.error("usage: node dashboard-test.mjs DASHBOARD_URL SCREENSHOT_PATH [EXPECTED_NODES]");
  process.exit(2);
}
const screenshot = resolve(screenshotArg);
const expectedNodes = Number(expectedArg || "3");
const TIMEOUT = 20_000;

function isLoopback(u) {
  try {
    const { protocol, hostname } = new URL(u);
    if (protocol === "data:" || protocol === "about:") return true;
    return hostname === "127.0.0.1" || hostname === "localhost" || hostname === "[::1]";
  } catch {
    return false;
  }
}
if (!isLoopback(url)) {
  console.error(`refusing a non-loopback URL: ${url}`);
  process.exit(2);
}

const profile = mkdtempSync(join(tmpdir(), "tally-chromium-"));
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1360, height: 900 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-default-apps",
      "--disable-extensions",
      "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    ],
  });
  await context.route("**/*", (route) =>
    isLoopback(route.request().url()) ? route.continue() : route.abort("blockedbyclient"));

  const page = context.pages()[0] || (await context.newPage());
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console error: ${m.text()}`);
  });

  await page.goto(url, { waitUntil: "load", timeout: TIMEOUT });
  // Every node is shown with a value, and the nodes agree.
  await page.waitForFunction(
    (n) => {
      const cards = document.querySelectorAll("[data-node-url]");
      return document.body.dataset.mode === "gateway" &&
        cards.length === n &&
        Array.from(cards).every((c) => c.querySelector("[data-role=value]").dataset.value !== "") &&
        document.getElementById("convergence").dataset.converged === "true";
    },
    expectedNodes,
    { timeout: TIMEOUT },
  );
  const valuesOf = () => page.$$eval("[data-node-url]", (cards) =>
    Object.fromEntries(cards.map((c) => [c.dataset.nodeUrl, c.querySelector("[data-role=value]").dataset.value])));
  const before = await valuesOf();
  console.log("before:", JSON.stringify(before));

  await page.click("#inc");
  const result = page.locator("#action-result[data-ok]");
  await result.waitFor({ timeout: TIMEOUT });
  const ok = await result.getAttribute("data-ok");
  const message = await result.textContent();
  console.log("answer:", message);
  if (ok !== "true") throw new Error(`increment failed: ${message}`);

  // Every node's displayed value changes (the write reached one node; gossip carries it on).
  await page.waitForFunction(
    (old) => {
      const cards = Array.from(document.querySelectorAll("[data-node-url]"));
      return cards.length === Object.keys(old).length && cards.every((c) => {
        const v = c.querySelector("[data-role=value]").dataset.value;
        return v !== "" && v !== old[c.dataset.nodeUrl];
      });
    },
    before,
    { timeout: TIMEOUT },
  );
  const after = await valuesOf();
  console.log("after: ", JSON.stringify(after));
  for (const [node, v] of Object.entries(after)) {
    if (Number(v) !== Number(before[node]) + 1) throw new Error(`${node}: ${before[node]} -> ${v}, expected +1`);
  }
  // A named counter, through the dashboard's own form and row buttons.
  const NAME = "doors";
  const counterResult = page.locator("#counter-result");
  // Runs `act`, then waits for the outcome of the named write it started.
  async function namedWrite(act, what) {
    const seq = Number(await counterResult.getAttribute("data-seq"));
    await act();
    await page.waitForFunction(
      (s) => {
        const r = document.getElementById("counter-result");
        return Number(r.dataset.seq) > s && r.dataset.ok !== undefined;
      },
      seq,
      { timeout: TIMEOUT },
    );
    const ok = await counterResult.getAttribute("data-ok");
    const text = await counterResult.textContent();
    console.log(`${what}:`, text);
    return { ok, text };
  }
  // What the row shows: its value, convergence mark, and every node's cell.
  const rowOf = (name) => page.evaluate((name) => {
    const tr = Array.from(document.querySelectorAll("#counters-body tr"))
      .find((r) => r.dataset.counter === name);
    if (!tr) return null;
    return {
      value: tr.querySelector("[data-role=counter-value]").dataset.value,
      converged: tr.querySelector("[data-role=counter-converged]").dataset.converged,
      nodes: Object.fromEntries(Array.from(tr.querySelectorAll("[data-role=counter-node]"))
        .map((td) => [td.dataset.node, td.dataset.value])),
    };
  }, name);
  // Waits until the row shows `want` on every one of the expected nodes, converged.
  async function expectEverywhere(name, want, what) {
    try {
      await page.waitForFunction(
        ({ name, want, n }) => {
          const tr = Array.from(document.querySelectorAll("#counters-body tr"))
            .find((r) => r.dataset.counter === name);
          if (!tr) return false;
          const cells = Array.from(tr.querySelectorAll("[data-role=counter-node]"));
          return cells.length === n &&
            cells.every((td) => td.dataset.value === String(want)) &&
            tr.querySelector("[data-role=counter-value]").dataset.value === String(want) &&
            tr.querySelector("[data-role=counter-converged]").dataset.converged === "true";
        },
        { name, want, n: expectedNodes },
        { timeout: TIMEOUT },
      );
    } catch (e) {
      throw new Error(`${what}: ${name} never showed ${want} on every node, converged; ` +
        `shown: ${JSON.stringify(await rowOf(name))}`);
    }
    console.log(`${what}:`, JSON.stringify(await rowOf(name)));
  }
  const posts = [];
  page.on("request", (r) => {
    if (r.method() === "POST" && new URL(r.url()).pathname.startsWith("/counters/")) posts.push(r.url());
  });

  // A name the nodes would refuse is refused by the page, before any request.
  await page.fill("#counter-name", "bad name!");
  const refused = await namedWrite(() => page.click("#counter-inc"), "bad name");
  if (refused.ok !== "false" || posts.length !== 0) {
    throw new Error(`a bad name was not refused in the page: ${refused.text}, requests ${posts}`);
  }
  const existing = await rowOf(NAME);
  const base = existing ? Number(existing.value) : 0;
  await page.fill("#counter-name", NAME);
  await page.fill("#counter-by", "3");
  const created = await namedWrite(() => page.click("#counter-inc"), `form: ${NAME} by 3`);
  if (created.ok !== "true") throw new Error(`named increment failed: ${created.text}`);
  await expectEverywhere(NAME, base + 3, "after the form");
  const row = page.locator(`#counters-body tr[data-counter="${NAME}"]`);
  const inc = await namedWrite(() => row.locator("button[data-action=increment]").click(), `${NAME} +1`);
  if (inc.ok !== "true") throw new Error(`row +1 failed: ${inc.text}`);
  await expectEverywhere(NAME, base + 4, "after +1");
  const dec = await namedWrite(() => row.locator("button[data-action=decrement]").click(), `${NAME} −1`);
  if (dec.ok !== "true") throw new Error(`row −1 failed: ${dec.text}`);
  await expectEverywhere(NAME, base + 3, "after −1");
  if (posts.length !== 3) throw new Error(`expected 3 named POSTs, saw ${posts.length}: ${posts}`);
  // The default counter did not move.
  const still = await valuesOf();
  for (const [node, v] of Object.entries(still)) {
    if (v !== after[node]) throw new Error(`${node}: default counter ${after[node]} -> ${v} after named writes`);
  }

  // Settle for the picture: converged again, and two polls for the frame rates.
  await page.waitForFunction(
    () => document.getElementById("convergence").dataset.converged === "true",
    null,
    { timeout: TIMEOUT },
  );
  await page.waitForTimeout(1200);
  if (problems.length) throw new Error(problems.join("\n"));

  mkdirSync(dirname(screenshot), { recursive: true });
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`screenshot: ${screenshot}`);
  console.log("browser test passed: every node's value changed after one click, " +
    `and ${NAME} showed ${base + 3}, ${base + 4}, ${base + 3} on every node after the form, +1 and −1`);
} catch (e) {
  console.error(`browser test FAILED: ${e.message}`);
  try {
    const page = context && context.pages()[0];
    if (page) {
      const failed = screenshot.replace(/\.png$/, "") + "-failed.png";
      mkdirSync(dirname(failed), { recursive: true });
      await page.screenshot({ path: failed, fullPage: true });
      console.error(`screenshot of the failure: ${failed}`);
    }
  } catch { /* nothing more to show */ }
  process.exitCode = 1;
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
