/** A raw HTTP request, so Host and Origin can be anything or absent (fetch would set Host itself). */
import { request } from 'node:http'
import type { IncomingMessage } from 'node:http'

export interface Answer { status: number, headers: IncomingMessage['headers'], body: string }

export async function rawRequest (port: number, init: { method?: string, path: string, headers?: Record<string, string>, body?: string }): Promise<Answer> {
  return await new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: init.method ?? 'GET', path: init.path, headers: init.headers, setHost: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { body += d })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body }) })
    })
    req.on('error', reject)
    req.end(init.body)
  })
}
