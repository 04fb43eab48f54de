FROM node:22-slim
WORKDIR /app
COPY package-lock.json package.json ./
COPY prisma/schema.prisma ./prisma/
COPY scripts/patch-deps.js ./scripts/
RUN npm ci
COPY . .
RUN npm run build
CMD ["node", "dist/index.js"]
