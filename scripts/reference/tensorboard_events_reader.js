// Prints the events of TensorBoard event files as JSON, read by code svmoe did not write:
// tfrecord's RecordReader (each record's length and data checked against their masked CRC-32C)
// and protobufjs decoding TensorBoard's Event message. The schema below is TensorBoard's own
// numbering (tensorboard/compat/proto/event.proto: Event.wall_time = 1 double, step = 2 int64,
// file_version = 3 string, summary = 5; summary.proto: Summary.value = 1 repeated,
// Summary.Value.tag = 1 string, simple_value = 2 float), typed here from TensorBoard's sources,
// not from svmoe's .proto.
//   node tensorboard_events_reader.js FILE...
//   -> [{"file": F, "events": [{"wall_time": s, "step": n, "file_version": "..."} |
//                              {"wall_time": s, "step": n, "values": [{"tag": t, "simple_value": v}]}]}]
'use strict';
const protobuf = require('protobufjs');
const { RecordReader } = require('tfrecord');

const root = protobuf.Root.fromJSON({
  nested: {
    tensorboard: {
      nested: {
        Event: {
          oneofs: { what: { oneof: ['file_version', 'summary'] } },
          fields: {
            wall_time: { type: 'double', id: 1 },
            step: { type: 'int64', id: 2 },
            file_version: { type: 'string', id: 3 },
            summary: { type: 'Summary', id: 5 },
          },
        },
        Summary: {
          fields: { value: { rule: 'repeated', type: 'Value', id: 1 } },
          nested: {
            Value: { fields: { tag: { type: 'string', id: 1 }, simple_value: { type: 'float', id: 2 } } },
          },
        },
      },
    },
  },
});
const Event = root.lookupType('tensorboard.Event');

async function readFile(file) {
  const reader = await RecordReader.create(file);
  const events = [];
  for (let record = await reader.readRecord(); record !== null; record = await reader.readRecord()) {
    const event = Event.decode(record);
    const out = { wall_time: event.wall_time, step: Number(event.step) };
    if (event.what === 'file_version') out.file_version = event.file_version;
    if (event.what === 'summary') {
      out.values = event.summary.value.map((v) => ({ tag: v.tag, simple_value: v.simple_value }));
    }
    events.push(out);
  }
  await reader.close();
  return { file, events };
}

(async () => {
  const files = process.argv.slice(2);
  const out = [];
  for (const file of files) out.push(await readFile(file));
  process.stdout.write(JSON.stringify(out) + '\n');
})().catch((error) => {
  process.stderr.write(`tensorboard_events_reader: ${error.stack || error}\n`);
  process.exit(1);
});
