FROM node:22
WORKDIR /app
COPY package.json ./
RUN npm ci

FROM node:22 AS yarn
COPY package.json ./
RUN yarn install --frozen-lockfile
COPY . .
