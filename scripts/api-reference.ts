/**
 * Writes docs/api.md, the reference of berth's gRPC API, from the proto files' comments (through
 * the descriptor set `npm run generate` builds). A unit test checks that docs/api.md matches it.
 *
 *   npm run docs:api
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { fromBinary, isFieldSet } from '@bufbuild/protobuf';
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FieldDescriptorProtoSchema,
  FileDescriptorSetSchema,
  type DescriptorProto,
  type EnumDescriptorProto,
  type FieldDescriptorProto,
  type FileDescriptorProto,
} from '@bufbuild/protobuf/wkt';

/** Field numbers of descriptor.proto, for source-location paths. */
const PATH = { fileMessage: 4, fileEnum: 5, fileService: 6, messageField: 2, messageNested: 3, messageEnum: 4, enumValue: 2, serviceMethod: 2 } as const;

const SCALARS: Partial<Record<FieldDescriptorProto_Type, string>> = {
  [FieldDescriptorProto_Type.DOUBLE]: 'double',
  [FieldDescriptorProto_Type.FLOAT]: 'float',
  [FieldDescriptorProto_Type.INT64]: 'int64',
  [FieldDescriptorProto_Type.UINT64]: 'uint64',
  [FieldDescriptorProto_Type.INT32]: 'int32',
  [FieldDescriptorProto_Type.UINT32]: 'uint32',
  [FieldDescriptorProto_Type.BOOL]: 'bool',
  [FieldDescriptorProto_Type.STRING]: 'string',
  [FieldDescriptorProto_Type.BYTES]: 'bytes',
};

function commentsOf(file: FileDescriptorProto): (path: number[]) => string {
  const byPath = new Map<string, string>();
  for (const location of file.sourceCodeInfo?.location ?? []) {
    const text = [location.leadingComments, location.trailingComments].filter(Boolean).join(' ').trim();
    if (text) byPath.set(location.path.join('.'), text.replace(/\s*\n\s*/g, ' '));
  }
  return (path) => byPath.get(path.join('.')) ?? '';
}

const anchor = (name: string) => name.toLowerCase().replace(/[^a-z0-9]+/g, '-');
const link = (name: string) => (name.startsWith('berth.') ? `[${name.split('.').pop()}](#${anchor(name.split('.').pop()!)})` : `\`${name}\``);
const cell = (text: string) => text.replace(/\|/g, '\\|');

function fieldType(field: FieldDescriptorProto, maps: Map<string, DescriptorProto>): string {
  const typeName = field.typeName.replace(/^\./, '');
  const entry = maps.get(typeName);
  if (entry) return `map<${fieldType(entry.field[0]!, maps)}, ${fieldType(entry.field[1]!, maps)}>`;
  const base = SCALARS[field.type] ?? link(typeName);
  if (field.label === FieldDescriptorProto_Label.REPEATED) return `repeated ${base}`;
  return field.proto3Optional ? `optional ${base}` : base;
}

export function renderApiReference(descriptorSet: Uint8Array): string {
  const set = fromBinary(FileDescriptorSetSchema, descriptorSet);
  const files = set.file.filter((f) => f.package.startsWith('berth.'));
  const out: string[] = [
    '# berth API reference',
    '',
    'Generated from the comments of `proto/berth/agent/v1/*.proto` by `npm run docs:api`; a test',
    'keeps it in step with them. Package `berth.agent.v1`; clients use the generated code of their',
    'language, or `grpcurl` (the agent serves reflection), or `berthctl`.',
    '',
  ];
  const sections = { services: [] as string[], messages: [] as string[], enums: [] as string[] };
  for (const file of files.sort((a, b) => a.name.localeCompare(b.name))) {
    const comment = commentsOf(file);
    const maps = new Map<string, DescriptorProto>();
    const collectMaps = (message: DescriptorProto, prefix: string) => {
      for (const nested of message.nestedType) {
        if (nested.options?.mapEntry) maps.set(`${prefix}.${message.name}.${nested.name}`, nested);
        collectMaps(nested, `${prefix}.${message.name}`);
      }
    };
    for (const message of file.messageType) collectMaps(message, file.package);

    file.service.forEach((service, s) => {
      const lines = [`### ${service.name}`, '', comment([PATH.fileService, s]), '', '| Method | Request | Response | Description |', '|---|---|---|---|'];
      service.method.forEach((method, m) => {
        const request = `${method.clientStreaming ? 'stream ' : ''}${link(method.inputType.replace(/^\./, ''))}`;
        const response = `${method.serverStreaming ? 'stream ' : ''}${link(method.outputType.replace(/^\./, ''))}`;
        lines.push(`| ${method.name} | ${request} | ${response} | ${cell(comment([PATH.fileService, s, PATH.serviceMethod, m]))} |`);
      });
      sections.services.push(lines.join('\n'));
    });

    const renderEnum = (e: EnumDescriptorProto, path: number[]) => {
      const lines = [`### ${e.name}`, '', comment(path), '', '| Name | Number | Description |', '|---|---|---|'];
      e.value.forEach((v, i) => lines.push(`| ${v.name} | ${v.number} | ${cell(comment([...path, PATH.enumValue, i]))} |`));
      sections.enums.push(lines.join('\n'));
    };
    const renderMessage = (message: DescriptorProto, path: number[]) => {
      if (message.options?.mapEntry) return;
      const lines = [`### ${message.name}`, '', comment(path)];
      if (message.field.length > 0) {
        lines.push('', '| Field | Type | Number | Description |', '|---|---|---|---|');
        message.field.forEach((field, i) => {
          const oneof = isFieldSet(field, FieldDescriptorProtoSchema.field.oneofIndex) && !field.proto3Optional ? ` (one of \`${message.oneofDecl[field.oneofIndex]!.name}\`)` : '';
          lines.push(`| ${field.name} | ${fieldType(field, maps)} | ${field.number} | ${cell(comment([...path, PATH.messageField, i]))}${oneof} |`);
        });
      }
      sections.messages.push(lines.join('\n'));
      message.nestedType.forEach((nested, i) => renderMessage(nested, [...path, PATH.messageNested, i]));
      message.enumType.forEach((e, i) => renderEnum(e, [...path, PATH.messageEnum, i]));
    };
    file.messageType.forEach((message, i) => renderMessage(message, [PATH.fileMessage, i]));
    file.enumType.forEach((e, i) => renderEnum(e, [PATH.fileEnum, i]));
  }
  out.push('## Services', '', ...sections.services.map((s) => `${s}\n`), '## Messages', '', ...sections.messages.map((s) => `${s}\n`), '## Enums', '', ...sections.enums.map((s) => `${s}\n`));
  return `${out
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trimEnd()}\n`;
}

export const DESCRIPTOR_SET = fileURLToPath(new URL('../src/gen/berth.binpb', import.meta.url));
export const API_REFERENCE = fileURLToPath(new URL('../docs/api.md', import.meta.url));

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(API_REFERENCE, renderApiReference(readFileSync(DESCRIPTOR_SET)));
  console.log(`wrote ${API_REFERENCE}`);
}
