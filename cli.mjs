import http from 'node:http';
const req = http.get('http://127.0.0.1:/a.tgz', (res) => {
  let n = 0;
  res.on('data', (c) => n += c.length);
  res.on('end', () => console.log('end', n, res.headers['content-length']));
  res.on('error', (e) => console.log('res error', e.message));
});
req.on('error', (e) => console.log('req error', e.code, e.message, e.bytesParsed, e.rawPacket?.length));
req.on('close', () => console.log('req close'));
setTimeout(() => {}, 1000);
