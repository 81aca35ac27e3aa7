/**
 * `vmesh ca ...`: the network CA on the command line. Make a CA and its trust
 * file, sign device certificates, revoke them, and show any vmesh key,
 * certificate, trust or revocation file (never a private key). Formats and
 * checks: docs/certificates.md.
 *
 * Exit codes: 0 success, 1 the operation failed (or `show --trust` found the
 * file does not verify), 2 bad usage or input (VMESH_ERR_CONFIG, mapped by
 * the top-level catch; commander's own usage errors under `ca` exit 2 too).
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command, CommanderError } from 'commander';
import { readIdentityFile } from '../crypto/index.ts';
import {
  createCa,
  hasCertificateMagic,
  issueCertificate,
  looksLikeCertificatePem,
  parseTrust,
  readCaFile,
  readCertificateFile,
  readTrustFile,
  trustOf,
  verifyCertificate,
  verifyCertificateSignature,
  writeCaFile,
  writeCertificateFile,
  writeTrustFile,
} from '../crypto/index.ts';
import type { Certificate, Role, Trust } from '../crypto/index.ts';
import {
  createRevocationList,
  hasRevocationListMagic,
  decodeRevocationList,
  readRevocationListFile,
  verifyRevocationList,
  writeRevocationListFile,
} from '../crypto/index.ts';
import type { RevocationList } from '../crypto/index.ts';
import { VmeshError, toVmeshError } from '../errors/index.ts';

const DAY_MS = 24 * 60 * 60 * 1000;
const MAX_DAYS = 36500;
const KNOWN_ROLES: readonly Role[] = ['relay', 'serve'];

function usage(message: string): VmeshError {
  return new VmeshError('VMESH_ERR_CONFIG', message);
}

/** Commander's usage errors (missing option, unknown command) exit 2 like VMESH_ERR_CONFIG. */
function usageExit(err: CommanderError): never {
  process.exit(err.exitCode === 0 ? 0 : 2);
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function parseDays(value: string): number {
  const days = Number(value);
  if (value.trim() === '' || !Number.isFinite(days) || days <= 0 || days > MAX_DAYS)
    throw usage(
      `--days: expected a number of days above 0 and at most ${MAX_DAYS}, got "${value}"`,
    );
  return days;
}

function parseSerial(value: string, flag: string): number {
  if (!/^\d{1,10}$/.test(value) || Number(value) > 0xffffffff)
    throw usage(`${flag}: expected a whole number from 0 to 4294967295, got "${value}"`);
  return Number(value);
}

function parseRoles(value: string | undefined): Role[] {
  if (value === undefined || value.trim() === '' || value.trim() === 'none') return [];
  const roles = new Set<Role>();
  for (const part of value.split(',')) {
    const r = part.trim().toLowerCase();
    if (!(KNOWN_ROLES as readonly string[]).includes(r))
      throw usage(
        `--roles: unknown role "${part.trim()}" (known: ${KNOWN_ROLES.join(', ')}, or none)`,
      );
    roles.add(r as Role);
  }
  return KNOWN_ROLES.filter((r) => roles.has(r));
}

function parsePublic(value: string): { signingPublic: Uint8Array; agreementPublic: Uint8Array } {
  const v = value.trim();
  if (!/^[0-9a-fA-F]{128}$/.test(v))
    throw usage(
      '--public: expected 128 hex characters: the Ed25519 then the X25519 public key (see `vmesh ca show IDENTITY.json`)',
    );
  const bytes = Buffer.from(v, 'hex');
  return { signingPublic: bytes.subarray(0, 32), agreementPublic: bytes.subarray(32) };
}

function rows(title: string, fields: [string, string][]): string {
  const width = Math.max(...fields.map(([k]) => k.length));
  return [title, ...fields.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`)].join('\n');
}

function relative(ms: number, now: number): string {
  const seconds = Math.abs(ms - now) / 1000;
  const [n, unit] =
    seconds < 90
      ? [Math.round(seconds), 'second']
      : seconds < 2 * 3600
        ? [Math.round(seconds / 60), 'minute']
        : seconds < 2 * 86400
          ? [Math.round(seconds / 3600), 'hour']
          : [Math.round(seconds / 86400), 'day'];
  const span = `${n} ${unit}${n === 1 ? '' : 's'}`;
  return ms >= now ? `in ${span}` : `${span} ago`;
}

function rolesText(roles: readonly Role[]): string {
  return roles.length === 0 ? 'none (may connect only)' : roles.join(', ');
}

type Verdict = { ok: true; text: string } | { ok: false; code: string; message: string };

function verdict(check: () => string): Verdict {
  try {
    return { ok: true, text: check() };
  } catch (err) {
    const e = toVmeshError(err);
    return { ok: false, code: e.code, message: e.message };
  }
}

function verdictText(v: Verdict): string {
  return v.ok ? `yes: ${v.text}` : `NO: ${v.code}: ${v.message}`;
}

function certificateFields(c: Certificate, now: number): [string, string][] {
  return [
    ['name', c.name],
    ['device id', c.deviceId],
    ['serial', String(c.serial)],
    ['network id', c.networkId],
    ['valid from', `${iso(c.notBefore)}  (${relative(c.notBefore, now)})`],
    [
      'valid until',
      `${iso(c.notAfter)}  (${now > c.notAfter ? 'expired ' : 'expires '}${relative(c.notAfter, now)})`,
    ],
    ['roles', rolesText(c.roles)],
    ['signing key', `${hex(c.signingPublic)}  (Ed25519)`],
    ['agreement key', `${hex(c.agreementPublic)}  (X25519)`],
  ];
}

function certificateJson(c: Certificate): Record<string, unknown> {
  return {
    kind: 'certificate',
    version: c.version,
    name: c.name,
    device: c.deviceId,
    serial: c.serial,
    networkId: c.networkId,
    notBefore: iso(c.notBefore),
    notAfter: iso(c.notAfter),
    roles: c.roles,
    signingPublic: hex(c.signingPublic),
    agreementPublic: hex(c.agreementPublic),
  };
}

interface Shown {
  text: string;
  json: Record<string, unknown>;
}

function showFile(
  path: string,
  trust: Trust | undefined,
  revocations: RevocationList | undefined,
  now: number,
): Shown {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw usage(`cannot read ${path}: ${(err as Error).message}`);
  }
  if (hasCertificateMagic(bytes) || looksLikeCertificatePem(bytes)) {
    const c = readCertificateFile(path);
    const form = hasCertificateMagic(bytes) ? 'raw' : 'PEM';
    const fields = certificateFields(c, now);
    const json = certificateJson(c);
    if (trust !== undefined) {
      const v = verdict(() => {
        verifyCertificate(c, trust, {
          now,
          ...(revocations === undefined ? {} : { revocations }),
        });
        return `signed by the CA of ${trust.network}, ${revocations === undefined ? 'revocation not checked (no --crl)' : 'not revoked'}, valid now`;
      });
      fields.push(['verifies', verdictText(v)]);
      json.verified = v;
    }
    return {
      text: rows(`certificate v${c.version} (${form}, ${bytes.length} bytes)`, fields),
      json,
    };
  }

  if (hasRevocationListMagic(bytes)) {
    let list;
    try {
      list = decodeRevocationList(bytes);
    } catch (err) {
      throw new VmeshError(
        'VMESH_ERR_CERT_INVALID',
        `revocation list ${path}: ${(err as Error).message}`,
        {
          reason: 'malformed',
        },
      );
    }
    const shownSerials =
      list.serials.length <= 20
        ? list.serials.join(', ') || 'none'
        : `${list.serials.slice(0, 20).join(', ')}, … (${list.serials.length - 20} more)`;
    const fields: [string, string][] = [
      ['network id', list.networkId],
      ['issued at', `${iso(list.issuedAt)}  (${relative(list.issuedAt, now)})`],
      ['revoked', `${list.serials.length} serial${list.serials.length === 1 ? '' : 's'}`],
      ['serials', shownSerials],
    ];
    const json: Record<string, unknown> = {
      kind: 'revocation-list',
      version: list.version,
      networkId: list.networkId,
      issuedAt: iso(list.issuedAt),
      serials: list.serials,
    };
    if (trust !== undefined) {
      const v = verdict(() => {
        verifyRevocationList(list, trust);
        return `signed by the CA of ${trust.network}`;
      });
      fields.push(['verifies', verdictText(v)]);
      json.verified = v;
    }
    return { text: rows(`revocation list v${list.version}`, fields), json };
  }

  let parsed: Record<string, unknown>;
  try {
    const value: unknown = JSON.parse(bytes.toString('utf8'));
    if (typeof value !== 'object' || value === null) throw new Error('not an object');
    parsed = value as Record<string, unknown>;
  } catch {
    throw usage(`${path} is not a vmesh certificate, revocation list, trust, CA or identity file`);
  }

  const sameNetwork = (networkId: string, what: string): Verdict =>
    verdict(() => {
      if (trust === undefined) return '';
      if (networkId !== trust.networkId)
        throw new VmeshError(
          'VMESH_ERR_CERT_INVALID',
          `${what} is for network ${networkId}, not ${trust.networkId} (${trust.network})`,
        );
      return `the same CA as the trust file (${trust.network})`;
    });

  switch (parsed.type) {
    case 'vmesh-trust': {
      const t = parseTrust(bytes.toString('utf8'), `trust file ${path}`);
      const fields: [string, string][] = [
        ['network', t.network],
        ['network id', t.networkId],
        ['CA key', `${hex(t.caPublicKey)}  (Ed25519)`],
      ];
      const json: Record<string, unknown> = {
        kind: 'trust',
        network: t.network,
        networkId: t.networkId,
        caPublicKey: hex(t.caPublicKey),
      };
      if (trust !== undefined) {
        const v = sameNetwork(t.networkId, 'this trust file');
        fields.push(['verifies', verdictText(v)]);
        json.verified = v;
      }
      return { text: rows('trust file v1', fields), json };
    }
    case 'vmesh-ca': {
      const authority = readCaFile(path);
      const fields: [string, string][] = [
        ['network', authority.network],
        ['network id', authority.networkId],
        [
          'CA key',
          `${hex(authority.publicKey)}  (Ed25519 public key; the private key is not shown)`,
        ],
      ];
      const json: Record<string, unknown> = {
        kind: 'ca',
        network: authority.network,
        networkId: authority.networkId,
        caPublicKey: hex(authority.publicKey),
      };
      if (trust !== undefined) {
        const v = sameNetwork(authority.networkId, 'this CA');
        fields.push(['verifies', verdictText(v)]);
        json.verified = v;
      }
      return { text: rows('CA key file v1', fields), json };
    }
    case 'vmesh-identity': {
      const id = readIdentityFile(path);
      const publicHex = hex(id.signingPublic) + hex(id.agreementPublic);
      const fields: [string, string][] = [
        ['device id', id.deviceId],
        ['signing key', `${hex(id.signingPublic)}  (Ed25519)`],
        ['agreement key', `${hex(id.agreementPublic)}  (X25519)`],
        ['public', `${publicHex}  (for vmesh ca sign --public)`],
      ];
      if (trust !== undefined)
        fields.push(['verifies', 'n/a: an identity file carries no CA signature']);
      return {
        text: rows('identity file v1 (private keys are not shown)', fields),
        json: {
          kind: 'identity',
          device: id.deviceId,
          signingPublic: hex(id.signingPublic),
          agreementPublic: hex(id.agreementPublic),
          public: publicHex,
        },
      };
    }
    default:
      throw usage(
        `${path} is not a vmesh certificate, revocation list, trust, CA or identity file`,
      );
  }
}

/** Adds `vmesh ca init|sign|revoke|trust|show` to the program; returns the `ca` command. */
export function registerCaCommands(program: Command): Command {
  const ca = program
    .command('ca')
    .description(
      'the network CA: make it, sign device certificates, revoke them, show any vmesh key or certificate file',
    )
    .exitOverride(usageExit)
    .addHelpText(
      'after',
      `
Examples:
  $ vmesh ca init --network home --out ca.json --trust trust.json
  $ vmesh ca show keys/a.json                       a device's public keys (for --public)
  $ vmesh ca sign --ca ca.json --identity keys/a.json --name a --roles relay,serve --out a.cert
  $ vmesh ca sign --ca ca.json --public <128 hex> --name phone --days 90 --out phone.cert --pem
  $ vmesh ca revoke --ca ca.json --crl crl.bin --cert phone.cert
  $ vmesh ca show a.cert --trust trust.json --crl crl.bin

Keep ca.json offline (mode 0600). Every device gets trust.json, its own certificate and crl.bin.
Exit codes: 0 ok, 1 failed or does not verify, 2 bad usage or input. Formats: docs/certificates.md.`,
    );

  ca.command('init')
    .description('make a new network CA: a CA key file (mode 0600) and the public trust file')
    .requiredOption('-n, --network <name>', 'network name (letters, digits, . _ -)')
    .requiredOption('-o, --out <file>', 'CA key file to write (keep it offline)')
    .requiredOption('-t, --trust <file>', 'trust file to write (give it to every device)')
    .option('-f, --force', 'overwrite existing files')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      '\nExample:\n  $ vmesh ca init --network home --out ca.json --trust trust.json',
    )
    .action(
      (opts: { network: string; out: string; trust: string; force?: boolean; json?: boolean }) => {
        const overwrite = opts.force === true;
        if (resolve(opts.out) === resolve(opts.trust))
          throw usage('--out and --trust must be different files');
        if (!overwrite) {
          for (const f of [opts.out, opts.trust])
            if (existsSync(f)) throw usage(`${f} already exists (use --force to replace it)`);
        }
        const authority = createCa(opts.network);
        writeCaFile(opts.out, authority, { overwrite });
        writeTrustFile(opts.trust, trustOf(authority), { overwrite });
        if (opts.json === true)
          console.log(
            JSON.stringify({
              network: authority.network,
              networkId: authority.networkId,
              ca: opts.out,
              trust: opts.trust,
            }),
          );
        else
          console.log(
            `network ${authority.network}, id ${authority.networkId}\n` +
              `CA key written to ${opts.out} (mode 0600): keep it offline\n` +
              `trust file written to ${opts.trust}: give it to every device`,
          );
      },
    );

  ca.command('sign')
    .description("sign a device's public keys and name into a certificate")
    .requiredOption('--ca <file>', 'CA key file')
    .option('-i, --identity <file>', "the device's identity file (its public keys are used)")
    .option(
      '-p, --public <hex>',
      "the device's public keys: 128 hex characters (Ed25519 then X25519)",
    )
    .requiredOption('-n, --name <name>', 'device name (letters, digits, . _ -)')
    .option('-d, --days <n>', 'days the certificate is valid', '365')
    .option(
      '-r, --roles <list>',
      "comma-separated: relay (may relay others' traffic), serve (may expose services); default none",
    )
    .option('--serial <n>', 'serial number (u32; default random)')
    .requiredOption('-o, --out <file>', 'certificate file to write')
    .option('--pem', 'write PEM-like armour (for copy and paste) instead of raw bytes')
    .option('-f, --force', 'overwrite an existing file')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
The certificate is valid from 5 minutes before now (clock differences) for --days.

Examples:
  $ vmesh ca sign --ca ca.json --identity keys/a.json --name a --roles relay,serve --out a.cert
  $ vmesh ca sign --ca ca.json --public "$(vmesh ca show b.json --json | jq -r .public)" --name b --out b.cert --pem`,
    )
    .action(
      (opts: {
        ca: string;
        identity?: string;
        public?: string;
        name: string;
        days: string;
        roles?: string;
        serial?: string;
        out: string;
        pem?: boolean;
        force?: boolean;
        json?: boolean;
      }) => {
        if ((opts.identity === undefined) === (opts.public === undefined))
          throw usage('give the device keys with exactly one of --identity FILE or --public HEX');
        const days = parseDays(opts.days);
        const roles = parseRoles(opts.roles);
        const serial = opts.serial === undefined ? undefined : parseSerial(opts.serial, '--serial');
        const keys =
          opts.public !== undefined
            ? parsePublic(opts.public)
            : readIdentityFile(opts.identity as string);
        const authority = readCaFile(opts.ca);
        const now = Date.now();
        const bytes = issueCertificate(authority, {
          name: opts.name,
          signingPublic: keys.signingPublic,
          agreementPublic: keys.agreementPublic,
          notAfter: now + Math.round(days * DAY_MS),
          roles,
          ...(serial === undefined ? {} : { serial }),
        });
        writeCertificateFile(opts.out, bytes, {
          pem: opts.pem === true,
          overwrite: opts.force === true,
        });
        const c = verifyCertificate(bytes, trustOf(authority), { now });
        if (opts.json === true)
          console.log(JSON.stringify({ ...certificateJson(c), file: opts.out }));
        else
          console.log(
            `device id ${c.deviceId}\nname      ${c.name}\nserial    ${c.serial}\n` +
              `roles     ${rolesText(c.roles)}\nexpires   ${iso(c.notAfter)}\n` +
              `written to ${opts.out}${opts.pem === true ? ' (PEM)' : ''}`,
          );
      },
    );

  ca.command('revoke')
    .description('add a certificate to the revocation list (created if missing) and re-sign it')
    .requiredOption('--ca <file>', 'CA key file')
    .requiredOption('--crl <file>', 'revocation list to create or extend')
    .option('--cert <file>', 'the certificate to revoke')
    .option('--serial <n>', 'or its serial number')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
The list is re-issued whole with a later issuedAt; devices keep the newest list they have.

Examples:
  $ vmesh ca revoke --ca ca.json --crl crl.bin --cert phone.cert
  $ vmesh ca revoke --ca ca.json --crl crl.bin --serial 3735928559`,
    )
    .action((opts: { ca: string; crl: string; cert?: string; serial?: string; json?: boolean }) => {
      if ((opts.cert === undefined) === (opts.serial === undefined))
        throw usage('say what to revoke with exactly one of --cert FILE or --serial N');
      const serialArg =
        opts.serial === undefined ? undefined : parseSerial(opts.serial, '--serial');
      const authority = readCaFile(opts.ca);
      const trust = trustOf(authority);
      let serial: number;
      let name: string | undefined;
      if (serialArg === undefined) {
        const c = verifyCertificateSignature(readCertificateFile(opts.cert as string), trust);
        serial = c.serial;
        name = c.name;
      } else serial = serialArg;
      const previous = existsSync(opts.crl) ? readRevocationListFile(opts.crl, trust) : undefined;
      const serials = previous?.serials ?? [];
      const already = previous?.has(serial) === true;
      let issuedAt = previous?.issuedAt ?? 0;
      if (!already) {
        issuedAt = Math.max(Date.now(), issuedAt + 1);
        writeRevocationListFile(
          opts.crl,
          createRevocationList(authority, [...serials, serial], issuedAt),
        );
      }
      const count = serials.length + (already ? 0 : 1);
      const who = name === undefined ? `serial ${serial}` : `serial ${serial} ("${name}")`;
      if (opts.json === true)
        console.log(
          JSON.stringify({
            serial,
            ...(name === undefined ? {} : { name }),
            alreadyRevoked: already,
            revoked: count,
            issuedAt: iso(issuedAt),
            file: opts.crl,
          }),
        );
      else if (already)
        console.log(`${who} is already on ${opts.crl} (${count} revoked); the list is unchanged`);
      else
        console.log(
          `${who} revoked: ${opts.crl} now lists ${count} serial${count === 1 ? '' : 's'}, issued ${iso(issuedAt)}\n` +
            'give the new list to every device',
        );
    });

  ca.command('trust')
    .description('write the trust file again from the CA key file')
    .requiredOption('--ca <file>', 'CA key file')
    .requiredOption('-o, --out <file>', 'trust file to write')
    .option('-f, --force', 'overwrite an existing file')
    .option('--json', 'print JSON')
    .action((opts: { ca: string; out: string; force?: boolean; json?: boolean }) => {
      const authority = readCaFile(opts.ca);
      writeTrustFile(opts.out, trustOf(authority), { overwrite: opts.force === true });
      if (opts.json === true)
        console.log(
          JSON.stringify({
            network: authority.network,
            networkId: authority.networkId,
            trust: opts.out,
          }),
        );
      else console.log(`trust file of network ${authority.network} written to ${opts.out}`);
    });

  ca.command('show')
    .description(
      'show a certificate, revocation list, trust, CA or identity file (never private keys); with --trust, check it',
    )
    .argument('<file>', 'the file to show')
    .option('-t, --trust <file>', 'check the file against this trust file')
    .option('--crl <file>', 'with --trust: also check a certificate against this revocation list')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
With --trust the exit code is 1 when the file does not verify.

Examples:
  $ vmesh ca show a.cert
  $ vmesh ca show a.cert --trust trust.json --crl crl.bin
  $ vmesh ca show keys/a.json --json | jq -r .public`,
    )
    .action((file: string, opts: { trust?: string; crl?: string; json?: boolean }) => {
      if (opts.crl !== undefined && opts.trust === undefined)
        throw usage('--crl needs --trust (the list is checked against the CA)');
      const trust = opts.trust === undefined ? undefined : readTrustFile(opts.trust);
      const revocations =
        opts.crl === undefined || trust === undefined
          ? undefined
          : readRevocationListFile(opts.crl, trust);
      const shown = showFile(file, trust, revocations, Date.now());
      if (opts.json === true) console.log(JSON.stringify(shown.json, null, 2));
      else console.log(shown.text);
      const v = shown.json.verified as Verdict | undefined;
      if (v !== undefined && !v.ok) process.exitCode = 1;
    });

  return ca;
}
