#!/usr/bin/env node
// prepublishOnly of an addon package: its platform packages (optionalDependencies) must already be on the registry
// at the same version. A parent published first installs with exit 0 and no binary under npm 11 and pnpm 10, and
// `changeset publish` publishes concurrently, so the release publishes npm/* in an earlier step (tools/pack/README.md).
// MARLIN_SKIP_PUBLISH_ORDER=1 skips the check (dry runs, a local registry being filled in order by hand).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

// biome-ignore lint/suspicious/noUndeclaredEnvVars: read at publish time, by no turbo task.
if (process.env.MARLIN_SKIP_PUBLISH_ORDER === '1') process.exit(0);
const pkg = JSON.parse(readFileSync(join(process.cwd(), 'package.json'), 'utf8'));
const missing = [];
for (const name of Object.keys(pkg.optionalDependencies ?? {})) {
  let found = '';
  try {
    found = execFileSync('npm', ['view', `${name}@${pkg.version}`, 'version'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    found = '';
  }
  if (found !== pkg.version) missing.push(`${name}@${pkg.version}`);
}
if (missing.length > 0) {
  console.error(
    `check-publish-order: ${pkg.name}@${pkg.version} must be published after ${missing.join(', ')}, which the registry does not have yet. Publish them first: pnpm -r --filter "./npm/*" publish --access public --no-git-checks`,
  );
  process.exit(1);
}
